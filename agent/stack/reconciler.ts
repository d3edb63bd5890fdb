import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { Variables } from '../../shared/compose/interpolate.ts';
import { loadComposeStack } from '../../shared/compose/load.ts';
import type { ImageLock, Platform } from '../../shared/contracts/image-lock.ts';
import { watchStackEvents } from './docker-events.ts';
import { createReconcileLoop, type LoopState } from './reconcile-loop.ts';
import { emptyMemory, reconcileRun, type ReconcileResult, type ReconcileSettings, type StackStatus } from './reconcile-run.ts';
import { DEFAULT_BACKOFF, type BackoffPolicy } from './restart-backoff.ts';
import type { StackHold } from './plan-context.ts';
import { restartHistoryFile } from './restart-history-file.ts';
import { reportServices, type ReportedServiceStatus } from './service-status.ts';

export type { ExecutedStep, ReconcileResult, ReconcileStage, StackStatus } from './reconcile-run.ts';
export type { LoopState } from './reconcile-loop.ts';

export interface StackReconcilerOptions {
  docker: Dockerode;
  log: Logger;
  /** Compose files, merged in order. Re-read on every reconcile (an update may replace them). */
  composeFiles: string[];
  /** `${VAR}` values; a function is called on every reconcile. */
  variables?: Variables | (() => Promise<Variables>);
  /** Overrides the compose `name:`. */
  projectName?: string;
  /** The image lock; a function is called on every reconcile. */
  imageLock: ImageLock | (() => Promise<ImageLock>);
  platform: Platform;
  /** Pull a locked image that is not on the device. Default false: the first boot has no network. */
  allowPull?: boolean;
  /** Remove volumes of this stack that the compose files no longer declare. Default false. */
  removeVolumes?: boolean;
  /** The loop re-runs this often even without Docker events. Default 30 s. */
  intervalMs?: number;
  /** Upper bound of one reconcileOnce (including health waits). Default 120 s. */
  timeLimitMs?: number;
  backoff?: Partial<BackoffPolicy>;
  /** Coalesces bursts of Docker events into one run. Default 250 ms. */
  eventDebounceMs?: number;
  /** Clock for the planner (tests). Default Date.now. */
  now?: () => number;
  /** Where the restart history is kept across restarts of the agent (on the data partition); in memory only without it. */
  restartHistoryPath?: string;
  /** Services to keep stopped, read on every reconcile (StackHold); none without it. */
  hold?: () => Promise<StackHold | undefined>;
}

/** The stack's status as reported: each service with its summary, and what the loop is doing. */
export type ReportedStackStatus = Omit<StackStatus, 'services'> & { loop: LoopState; services: Record<string, ReportedServiceStatus> };

export interface StackReconciler {
  /** Starts the loop: a reconcile now, on every Docker event of the stack, on the interval and when a backoff ends. */
  start(): void;
  /** Stops the loop and waits for a run in progress. */
  stop(): Promise<void>;
  /** One plan -> execute cycle until converged, only waits remain, or the time limit. Never throws for stack problems. */
  reconcileOnce(options?: { timeLimitMs?: number }): Promise<ReconcileResult>;
  /** Runs `fn` while no reconcile runs (an update, a backup); see ReconcileLoop.runExclusive. */
  runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T>;
  status(): ReportedStackStatus;
}

/** The stack reconciler: one reconcile run (reconcile-run.ts) driven by the loop (reconcile-loop.ts). */
export function createStackReconciler(options: StackReconcilerOptions): StackReconciler {
  const settings = reconcileSettings(options);
  const memory = emptyMemory();
  const historyFile = options.restartHistoryPath ? restartHistoryFile(options.restartHistoryPath, options.log) : undefined;
  let historyLoaded = false;
  const loop = createReconcileLoop({
    reconcile: async (timeLimitMs, windDown) => {
      if (historyFile && !historyLoaded) {
        memory.history = await historyFile.load();
        historyLoaded = true;
      }
      const deadline = Date.now() + timeLimitMs;
      const result = await reconcileRun(settings, memory, () => (windDown() ? 0 : deadline));
      await historyFile?.save(memory.history).catch((err: unknown) => options.log.warn({ err }, 'cannot save the restart history'));
      return result;
    },
    watch: (onChange) => watchStackEvents(options.docker, () => projectName(settings), onChange, options.log),
    intervalMs: options.intervalMs ?? 30_000,
    debounceMs: options.eventDebounceMs ?? 250,
    timeLimitMs: options.timeLimitMs ?? 120_000,
    now: settings.now,
    log: options.log,
  });
  return {
    start: loop.start,
    stop: loop.stop,
    reconcileOnce: loop.reconcileOnce,
    runExclusive: loop.runExclusive,
    status: () => ({ ...memory.status, loop: loop.state(), services: reportServices(memory.status.services, settings.now()) }),
  };
}

function reconcileSettings(options: StackReconcilerOptions): ReconcileSettings {
  const { variables, imageLock } = options;
  return {
    docker: options.docker,
    log: options.log,
    composeFiles: options.composeFiles,
    variables: typeof variables === 'function' ? variables : async () => variables ?? {},
    imageLock: typeof imageLock === 'function' ? imageLock : async () => imageLock,
    ...(options.projectName !== undefined && { projectName: options.projectName }),
    platform: options.platform,
    allowPull: options.allowPull ?? false,
    removeVolumes: options.removeVolumes ?? false,
    backoff: { ...DEFAULT_BACKOFF, ...options.backoff },
    hold: options.hold ?? (async () => undefined),
    now: options.now ?? Date.now,
  };
}

/** The project whose events to watch: the name given, else the compose files' `name:`. */
async function projectName(settings: ReconcileSettings): Promise<string> {
  if (settings.projectName !== undefined) return settings.projectName;
  return (await loadComposeStack({ files: settings.composeFiles, variables: await settings.variables() })).project;
}
