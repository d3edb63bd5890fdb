import { access, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Logger } from 'pino';
import { parseEnvFile } from '../../shared/compose/load.ts';
import { imageLockSchema, type ImageLock, type Platform } from '../../shared/contracts/image-lock.ts';
import { DEVICE_OVERRIDES, STACK_BASE_FILE, STACK_LOCK_FILE } from '../../shared/contracts/stack-files.ts';
import { fsyncDirectory, readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import type { HealthSource } from '../health/index.ts';
import type { AgentModule } from '../module.ts';
import { bringStackUp, type BringUpTimings } from './bring-up.ts';
import { dockerBridgeGateway } from './docker-bridge.ts';
import { SERVICE_LABEL, STACK_LABEL } from './labels.ts';
import type { StackHold } from './plan-context.ts';
import { createStackReconciler, type ReportedStackStatus, type StackReconciler, type StackReconcilerOptions } from './reconciler.ts';
import { stackHealthReasons, stackMetrics } from './stack-health.ts';

export interface StackModuleOptions {
  /** Where the image installed the stack (compose files, templates, lock). */
  stackDir: string;
  dataDir: string;
  dockerSocket: string;
  /** The loop's timing and backoff; the defaults suit a device, tests shorten them. */
  tuning?: Pick<StackReconcilerOptions, 'backoff' | 'intervalMs' | 'eventDebounceMs'>;
}

export type StackModuleStatus = { state: 'none'; reason: string } | ({ state: 'present'; bringUp?: BringUpTimings } & ReportedStackStatus);

export interface StackModule extends AgentModule {
  status(): StackModuleStatus;
  /** The provisioning step bring-stack-up: reconciles until every service is up (healthy where it has a check). */
  bringUp(log: Logger, timeoutMs?: number): Promise<void>;
  /** Starts keeping the stack reconciled; agent.ts calls it once provisioning is done. */
  startLoop(): void;
  /** Runs `fn` (an update, a backup) while the reconciler holds the stack still; see StackReconciler.runExclusive. */
  runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T>;
  /** The Docker label filter (`org.memu.stack=<project>`) of this stack's containers, once the stack is known. */
  currentStackLabel(): string | undefined;
  /**
   * Restarts one service's container (the dashboard's "Restart"), with the loop held still
   * so the stop is not taken for a crash; the loop reconciles right after. Rejects, saying
   * why, when the stack has no such service or the service has no container.
   */
  restartService(service: string): Promise<void>;
  /**
   * Keeps services stopped (a whole-box restore replacing their data), or lifts the hold
   * with undefined. Kept in `agent/stack-hold.json` on the data partition, so it survives
   * a power cut; resolves after a reconcile has acted on it (held services stopped).
   */
  setHold(hold: StackHold | undefined): Promise<void>;
  /** The hold in force, if any. */
  hold(): Promise<StackHold | undefined>;
  /** Its `stack` section of the health report and why it degrades the device. */
  health: HealthSource;
  /** Docker's bridge gateway (where containers reach the host), once Docker answers; rejects when the module stops first. */
  dockerBridgeGateway(): Promise<string>;
}

const exists = (p: string) => access(p).then(() => true, () => false);

export function nodePlatform(arch = process.arch): Platform {
  if (arch === 'x64') return 'linux/amd64';
  if (arch === 'arm64') return 'linux/arm64';
  throw new Error(`Memu runs on amd64 and arm64, not ${arch}`);
}

/** The compose files that apply on this device: the base file, plus overrides whose device exists. */
async function applicableComposeFiles(stackDir: string): Promise<string[]> {
  const files = [join(stackDir, STACK_BASE_FILE)];
  for (const [file, device] of Object.entries(DEVICE_OVERRIDES)) {
    if ((await exists(join(stackDir, file))) && (await exists(device))) files.push(join(stackDir, file));
  }
  return files;
}

/**
 * The family's container stack, run by the reconciler. Compose variables come from the
 * stack env file rendered on the data partition (`config/stack.env`) when there is one,
 * over the data-partition defaults.
 */
export function createStackModule(opts: StackModuleOptions, log: Logger): StackModule {
  let reconciler: StackReconciler | undefined;
  let absentReason: string | undefined;
  let bringUpTimings: BringUpTimings | undefined;
  let stopped = false;
  const stopping = new AbortController();
  const holdPath = join(opts.dataDir, 'agent', 'stack-hold.json');
  const readHold = async (): Promise<StackHold | undefined> => {
    const value = (await readJsonIfPresent(holdPath)) as StackHold | undefined;
    return value && typeof value.reason === 'string' && Array.isArray(value.services) && Array.isArray(value.roles) ? value : undefined;
  };

  const readLock = async (): Promise<ImageLock> => imageLockSchema.parse(JSON.parse(await readFile(join(opts.stackDir, STACK_LOCK_FILE), 'utf8')));
  const variables = async (): Promise<Record<string, string>> => {
    const defaults = { MEMU_DATA_DIR: opts.dataDir, MEMU_CONFIG_DIR: join(opts.dataDir, 'config') };
    const envFile = join(opts.dataDir, 'config', 'stack.env');
    const text = await readFile(envFile, 'utf8').catch(() => undefined);
    return text === undefined ? defaults : { ...defaults, ...parseEnvFile(text, defaults) };
  };

  /** Finds the installed stack; an image without one runs no reconciler and says so. */
  const findStack = async (): Promise<StackReconciler | undefined> => {
    if (reconciler || absentReason) return reconciler;
    if (!(await exists(join(opts.stackDir, STACK_BASE_FILE)))) {
      absentReason = `this image carries no container stack (${join(opts.stackDir, STACK_BASE_FILE)} is missing)`;
      log.info({ reason: absentReason }, 'no stack to run');
      return undefined;
    }
    reconciler = createStackReconciler({
      docker: new Docker({ socketPath: opts.dockerSocket }),
      log,
      composeFiles: await applicableComposeFiles(opts.stackDir),
      variables,
      imageLock: readLock,
      platform: nodePlatform(),
      restartHistoryPath: join(opts.dataDir, 'agent', 'restart-history.json'),
      hold: readHold,
      ...opts.tuning,
    });
    return reconciler;
  };

  const status = (): StackModuleStatus => {
    if (absentReason) return { state: 'none', reason: absentReason };
    const current = reconciler?.status() ?? { loop: 'not started', converged: false, services: {} };
    return { state: 'present', bringUp: bringUpTimings, ...current };
  };

  return {
    name: 'stack',
    async start() {
      await findStack();
    },
    async stop() {
      stopped = true;
      stopping.abort(new Error('the stack module stopped'));
      await reconciler?.stop();
    },
    startLoop() {
      if (!stopped) reconciler?.start();
    },
    status,
    runExclusive(reason, fn) {
      return reconciler ? reconciler.runExclusive(reason, fn) : fn();
    },
    currentStackLabel() {
      const current = status();
      return current.state === 'present' && current.project ? `${STACK_LABEL}=${current.project}` : undefined;
    },
    async restartService(service) {
      const current = status();
      if (current.state === 'none') throw new Error(current.reason);
      if (!reconciler || !Object.hasOwn(current.services, service)) throw new Error(`the stack has no service named ${service}`);
      await reconciler.runExclusive(`restarting ${service}`, async () => {
        const docker = new Docker({ socketPath: opts.dockerSocket });
        const labels = [`${SERVICE_LABEL}=${service}`, current.project ? `${STACK_LABEL}=${current.project}` : STACK_LABEL];
        const [container] = await docker.listContainers({ all: true, filters: { label: labels } });
        if (!container) throw new Error(`${service} has no container yet (${current.services[service]!.summary})`);
        log.info({ service, containerId: container.Id }, 'restarting a service on request');
        // No timeout given: Docker uses the container's own StopTimeout (the compose stop_grace_period).
        await docker.getContainer(container.Id).restart();
      });
    },
    async setHold(hold) {
      if (hold) await writeJsonDurably(holdPath, hold, 0o600);
      else {
        await rm(holdPath, { force: true });
        await fsyncDirectory(join(opts.dataDir, 'agent'));
      }
      log.info({ hold }, hold ? 'services held stopped' : 'the hold on services is lifted');
      const found = await findStack();
      if (!found) return;
      const result = await found.reconcileOnce();
      if (result.error) throw new Error(`the stack could not act on the hold: ${result.error}`);
    },
    hold: readHold,
    health: {
      name: 'stack',
      report() {
        const current = status();
        if (current.state === 'none') return { sections: { stack: current }, reasons: [] };
        return { sections: { stack: current }, reasons: stackHealthReasons(current, Date.now()), metrics: stackMetrics(current) };
      },
    },
    dockerBridgeGateway: () => dockerBridgeGateway(opts.dockerSocket, stopping.signal),
    async bringUp(stepLog, timeoutMs = 15 * 60_000) {
      const found = await findStack();
      if (!found) return;
      bringUpTimings = await bringStackUp({ reconciler: found, dockerSocket: opts.dockerSocket, lock: readLock, platform: nodePlatform(), log: stepLog, timeoutMs });
    },
  };
}
