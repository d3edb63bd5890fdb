import type { ContainerBlueprint, NetworkBlueprint, VolumeBlueprint } from './container-spec.ts';
import type { RetryDecision } from './restart-backoff.ts';

/**
 * One change the reconciler can make (or one thing it waits for). The planner returns
 * a batch of these; the steps of one batch are independent and may run in parallel.
 */
export type Step =
  | { kind: 'createNetwork'; network: NetworkBlueprint }
  | { kind: 'removeNetwork'; networkId: string; name: string; reason: string }
  | { kind: 'createVolume'; volume: VolumeBlueprint }
  | { kind: 'removeVolume'; name: string; reason: string }
  | { kind: 'pullImage'; service: string; reference: string }
  | { kind: 'createContainer'; service: string; blueprint: ContainerBlueprint }
  | { kind: 'startContainer'; service: string; containerId: string; reason: StartReason }
  | { kind: 'restartContainer'; service: string; containerId: string; timeoutS: number; reason: 'unhealthy' }
  | { kind: 'stopContainer'; service: string | undefined; containerId: string; timeoutS: number; reason: string }
  | { kind: 'removeContainer'; service: string | undefined; containerId: string; reason: string }
  | { kind: 'waitHealthy'; service: string; containerId: string; neededBy: string[] }
  | { kind: 'backoff'; service: string; retryAt: number; reason: string }
  | { kind: 'reportCrashLoop'; service: string; restartsInWindow: number; retryAt: number };

export type StepKind = Step['kind'];
export type StepOf<K extends StepKind> = Extract<Step, { kind: K }>;

/** Why a container is started: first start, or again after it died, the kernel's OOM killer named apart (both count toward backoff). */
export type StartReason = 'new' | 'crashed' | 'out of memory';

/** Steps that change nothing; a batch of only these means "nothing to do right now". */
const WAIT_KINDS = new Set<StepKind>(['waitHealthy', 'backoff', 'reportCrashLoop']);

export function isWaitStep(step: Step): boolean {
  return WAIT_KINDS.has(step.kind);
}

/** A service held back by its restart backoff, and the crash-loop report once the loop breaker has tripped. */
export function backoffSteps(service: string, retry: RetryDecision, reason: string): Step[] {
  const backoff: Step = { kind: 'backoff', service, retryAt: retry.retryAt, reason };
  if (!retry.loopBreaker) return [backoff];
  return [backoff, { kind: 'reportCrashLoop', service, restartsInWindow: retry.restartsInWindow, retryAt: retry.retryAt }];
}

/** Identity of a step's target, to notice the same failing step again. */
export function stepTarget(step: Step): string {
  switch (step.kind) {
    case 'createNetwork':
      return `network:${step.network.key}`;
    case 'removeNetwork':
      return `network:${step.name}`;
    case 'createVolume':
      return `volume:${step.volume.key}`;
    case 'removeVolume':
      return `volume:${step.name}`;
    case 'stopContainer':
    case 'removeContainer':
      return `container:${step.containerId}`;
    default:
      return `service:${step.service}`;
  }
}

export function describeStep(step: Step): string {
  switch (step.kind) {
    case 'createNetwork':
      return `create network ${step.network.create.Name}`;
    case 'removeNetwork':
      return `remove network ${step.name} (${step.reason})`;
    case 'createVolume':
      return `create volume ${step.volume.create.Name}`;
    case 'removeVolume':
      return `remove volume ${step.name} (${step.reason})`;
    case 'pullImage':
      return `pull ${step.reference} for ${step.service}`;
    case 'createContainer':
      return `create container ${step.blueprint.name}`;
    case 'startContainer':
      return `start ${step.service} (${step.reason})`;
    case 'restartContainer':
      return `restart ${step.service} (${step.reason})`;
    case 'stopContainer':
      return `stop ${step.service ?? step.containerId.slice(0, 12)} (${step.reason})`;
    case 'removeContainer':
      return `remove ${step.service ?? step.containerId.slice(0, 12)} (${step.reason})`;
    case 'waitHealthy':
      return `wait for ${step.service} to be healthy (needed by ${step.neededBy.join(', ')})`;
    case 'backoff':
      return `back off ${step.service} until ${new Date(step.retryAt).toISOString()} (${step.reason})`;
    case 'reportCrashLoop':
      return `${step.service} restarted ${step.restartsInWindow} times; paused until ${new Date(step.retryAt).toISOString()}`;
  }
}
