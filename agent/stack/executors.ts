import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { describeStep, type Step, type StepKind, type StepOf } from './steps.ts';

/** Exactly one executor per step kind: adding a step kind without one does not compile. */
export type StepExecutors = { [K in StepKind]: (step: StepOf<K>) => Promise<void> };

export interface ExecutorEnvironment {
  docker: Dockerode;
  log: Logger;
  /** Epoch ms after which waits give up (the reconcile's time limit). */
  deadline: () => number;
  /** How often waitHealthy polls the container. */
  pollMs?: number;
}

export function runStep(executors: StepExecutors, step: Step): Promise<void> {
  // The mapped type guarantees the executor matches the step's kind.
  return (executors[step.kind] as (s: Step) => Promise<void>)(step);
}

const statusCode = (error: unknown) => (error as { statusCode?: number }).statusCode;

/** Docker says "already in that state" with 304 and "already gone" with 404: both are success. */
async function tolerate(codes: number[], action: () => Promise<unknown>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (!codes.includes(statusCode(error) ?? 0)) throw error;
  }
}

export function createExecutors(env: ExecutorEnvironment): StepExecutors {
  const { docker, log } = env;
  const reported = new Set<string>();
  return {
    async createNetwork(step) {
      await docker.createNetwork(step.network.create);
    },
    async removeNetwork(step) {
      await tolerate([404], () => docker.getNetwork(step.networkId).remove());
    },
    async createVolume(step) {
      await docker.createVolume(step.volume.create);
    },
    async removeVolume(step) {
      await tolerate([404], () => docker.getVolume(step.name).remove());
    },
    async pullImage(step) {
      const stream = await docker.pull(step.reference);
      await new Promise<void>((resolve, reject) =>
        docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve())),
      );
    },
    async createContainer(step) {
      const container = await docker.createContainer(step.blueprint.create);
      try {
        for (const { network, aliases } of step.blueprint.connect) {
          await docker.getNetwork(network).connect({ Container: container.id, EndpointConfig: { Aliases: aliases } });
        }
      } catch (error) {
        // A container missing a network would look up to date; do not leave it behind.
        await tolerate([404], () => container.remove({ force: true }));
        throw error;
      }
    },
    async startContainer(step) {
      await tolerate([304], () => docker.getContainer(step.containerId).start());
    },
    async restartContainer(step) {
      await docker.getContainer(step.containerId).restart({ t: step.timeoutS });
    },
    async stopContainer(step) {
      await tolerate([304, 404], () => docker.getContainer(step.containerId).stop({ t: step.timeoutS }));
    },
    async removeContainer(step) {
      await tolerate([404], () => docker.getContainer(step.containerId).remove({ force: true, v: false }));
    },
    async waitHealthy(step) {
      const container = docker.getContainer(step.containerId);
      const pollMs = env.pollMs ?? 250;
      while (Date.now() < env.deadline()) {
        const info = await container.inspect();
        if (info.State.Status !== 'running' || info.State.Health?.Status !== 'starting') return;
        await new Promise((r) => setTimeout(r, Math.min(pollMs, Math.max(0, env.deadline() - Date.now()))));
      }
    },
    async backoff(step) {
      log.debug({ service: step.service, retryAt: new Date(step.retryAt).toISOString() }, describeStep(step));
    },
    async reportCrashLoop(step) {
      // Reported once per pause, not on every loop.
      const key = `${step.service}@${step.retryAt}`;
      if (reported.has(key)) return;
      reported.add(key);
      log.warn(
        { service: step.service, restartsInWindow: step.restartsInWindow, retryAt: new Date(step.retryAt).toISOString() },
        `stack: ${describeStep(step)}`,
      );
    },
  };
}
