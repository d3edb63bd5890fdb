import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { ImageLock, Platform } from '../../shared/contracts/image-lock.ts';
import { loadComposeStack } from '../../shared/compose/load.ts';
import { readCurrentState } from './current-state.ts';
import type { DesiredStack } from '../../shared/compose/desired-stack.ts';
import { createExecutors, runStep } from './executors.ts';
import type { Variables } from '../../shared/compose/interpolate.ts';
import { stackFilter } from './labels.ts';
import { planNextSteps } from './planner.ts';
import {
  DEFAULT_BACKOFF,
  pruneRestartHistory,
  recordRestart,
  type BackoffPolicy,
  type RestartHistory,
} from './restart-backoff.ts';
import type { ServiceStatus } from './service-status.ts';
import { describeStep, isWaitStep, stepTarget, type Step } from './steps.ts';

/** Container events that change the current state (Docker matches health_status by prefix). */
const STATE_EVENTS = ['create', 'start', 'restart', 'die', 'stop', 'kill', 'oom', 'destroy', 'pause', 'unpause', 'rename', 'update', 'health_status'] as const;

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
}

export interface ExecutedStep {
  step: Step;
  description: string;
  ok: boolean;
  error?: string;
  ms: number;
}

export interface ReconcileResult {
  project?: string;
  /** The planner returned zero steps: Docker matches the compose files and nothing is pending. */
  converged: boolean;
  timedOut: boolean;
  /** Plan/execute rounds. */
  iterations: number;
  /** Steps run, in order (waitHealthy included, backoff/report not). */
  executed: ExecutedStep[];
  /** What was left when the run stopped (backoffs, crash-loop reports, health waits). */
  waiting: Step[];
  services: Record<string, ServiceStatus>;
  /** A stack-level problem: compose files, image lock, Docker unreachable. */
  error?: string;
  startedAt: number;
  durationMs: number;
}

export interface StackStatus {
  project?: string;
  /** Epoch ms of the last finished reconcile. */
  updatedAt?: number;
  converged: boolean;
  error?: string;
  services: Record<string, ServiceStatus>;
}

export interface StackReconciler {
  /** Starts the loop: a reconcile now, on every Docker event of the stack, on the interval and when a backoff ends. */
  start(): void;
  /** Stops the loop and waits for a run in progress. */
  stop(): Promise<void>;
  /** One plan -> execute cycle until converged, only waits remain, or the time limit. Never throws for stack problems. */
  reconcileOnce(options?: { timeLimitMs?: number }): Promise<ReconcileResult>;
  status(): StackStatus;
}

/** How often one run may repeat the same action on the same target (a crash restart happens at most twice). */
const MAX_REPEATS_PER_RUN = 3;

export function createStackReconciler(options: StackReconcilerOptions): StackReconciler {
  const { docker, log } = options;
  const now = options.now ?? Date.now;
  const backoff: BackoffPolicy = { ...DEFAULT_BACKOFF, ...options.backoff };
  const intervalMs = options.intervalMs ?? 30_000;
  const debounceMs = options.eventDebounceMs ?? 250;

  let history: RestartHistory = {};
  const lastErrors: Record<string, string> = {};
  let lastStatus: StackStatus = { converged: false, services: {} };
  let queue: Promise<unknown> = Promise.resolve();

  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let timerDue = Infinity;
  let inFlight: Promise<ReconcileResult> | undefined;
  let rerunRequested = false;
  let events: NodeJS.ReadableStream | undefined;
  let eventsRetry: NodeJS.Timeout | undefined;
  /** Set while stop() waits, so a run in a long health wait ends promptly. */
  let aborting = false;

  async function resolveInputs(): Promise<{ desired: DesiredStack; lock: ImageLock; variables: Variables }> {
    const variables = typeof options.variables === 'function' ? await options.variables() : (options.variables ?? {});
    const lock = typeof options.imageLock === 'function' ? await options.imageLock() : options.imageLock;
    const desired = await loadComposeStack({ files: options.composeFiles, variables, projectName: options.projectName });
    return { desired, lock, variables };
  }

  async function run(timeLimitMs: number): Promise<ReconcileResult> {
    const startedAt = Date.now();
    const timeLimitDeadline = startedAt + timeLimitMs;
    const deadline = () => (aborting ? 0 : timeLimitDeadline);
    const result: ReconcileResult = {
      converged: false,
      timedOut: false,
      iterations: 0,
      executed: [],
      waiting: [],
      services: {},
      startedAt,
      durationMs: 0,
    };
    const finish = () => {
      result.durationMs = Date.now() - startedAt;
      lastStatus = {
        converged: result.converged,
        // A stack-level error (bad compose edit, Docker down) keeps the last known per-service picture.
        services: result.error && Object.keys(result.services).length === 0 ? lastStatus.services : result.services,
        updatedAt: Date.now(),
        ...(result.project !== undefined && { project: result.project }),
        ...(result.error !== undefined && { error: result.error }),
      };
      return result;
    };

    let desired: DesiredStack;
    let lock: ImageLock;
    try {
      ({ desired, lock } = await resolveInputs());
    } catch (error) {
      result.error = (error as Error).message;
      log.error({ err: error }, `stack: cannot load the desired stack: ${result.error}`);
      return finish();
    }
    result.project = desired.project;
    const executors = createExecutors({ docker, log, deadline });
    const failedTargets = new Set<string>();
    const repeats = new Map<string, number>();

    try {
      for (;;) {
        result.iterations++;
        const current = await readCurrentState(docker, desired.project);
        const planTime = now();
        history = pruneRestartHistory(history, current.containers, planTime, backoff);
        const plan = planNextSteps(desired, current, {
          now: planTime,
          lock,
          platform: options.platform,
          restartHistory: history,
          backoff,
          allowPull: options.allowPull ?? false,
          removeVolumes: options.removeVolumes ?? false,
          lastErrors: { ...lastErrors },
        });
        for (const [name, status] of Object.entries(plan.services)) {
          if (status.state === 'running' || status.state === 'healthy') delete lastErrors[name];
        }
        result.services = plan.services;
        result.waiting = plan.steps.filter(isWaitStep);
        if (plan.steps.length === 0) {
          result.converged = true;
          break;
        }
        if (Date.now() >= deadline()) {
          result.timedOut = true;
          break;
        }
        const actions = plan.steps.filter((s) => !isWaitStep(s) && !failedTargets.has(stepTarget(s)));
        // Safety net: an action that keeps "succeeding" without changing Docker's state
        // (a bug, or Docker disagreeing with us) must not spin until the time limit.
        for (const step of actions) {
          const key = `${step.kind}:${stepTarget(step)}`;
          const count = (repeats.get(key) ?? 0) + 1;
          repeats.set(key, count);
          if (count > MAX_REPEATS_PER_RUN) {
            failedTargets.add(stepTarget(step));
            log.warn({ step: step.kind }, `stack: ${describeStep(step)} repeated ${MAX_REPEATS_PER_RUN} times; leaving it to the next run`);
          }
        }
        actions.splice(0, actions.length, ...actions.filter((s) => !failedTargets.has(stepTarget(s))));
        if (actions.length > 0) {
          await Promise.all(actions.map((step) => execute(step, executors, result, failedTargets)));
          continue;
        }
        const healthWaits = plan.steps.filter((s) => s.kind === 'waitHealthy');
        await Promise.all(
          plan.steps.filter((s) => s.kind === 'backoff' || s.kind === 'reportCrashLoop').map((s) => runStep(executors, s)),
        );
        if (healthWaits.length === 0) break; // only backoffs (or steps that already failed this run)
        await Promise.all(healthWaits.map((step) => execute(step, executors, result, failedTargets)));
      }
    } catch (error) {
      // Reading state failed (Docker down or restarting); the next run starts over from fresh state.
      result.error = `reconcile failed: ${(error as Error).message}`;
      log.error({ err: error }, `stack: ${result.error}`);
    }
    return finish();
  }

  async function execute(
    step: Step,
    executors: ReturnType<typeof createExecutors>,
    result: ReconcileResult,
    failedTargets: Set<string>,
  ): Promise<void> {
    const description = describeStep(step);
    const started = Date.now();
    const service = 'service' in step ? step.service : undefined;
    try {
      await runStep(executors, step);
      const countsAsRestart = (step.kind === 'startContainer' && step.reason === 'crashed') || step.kind === 'restartContainer';
      if (countsAsRestart && service) history = recordRestart(history, service, now());
      result.executed.push({ step, description, ok: true, ms: Date.now() - started });
      if (!isWaitStep(step)) log.info({ step: step.kind, service }, `stack: ${description}`);
    } catch (error) {
      const message = (error as Error).message;
      if (!isWaitStep(step)) failedTargets.add(stepTarget(step));
      result.executed.push({ step, description, ok: false, error: message, ms: Date.now() - started });
      log.error({ step: step.kind, service, err: error }, `stack: ${description} failed: ${message}`);
      // A failed create/start/pull backs off like a crash, so a port clash cannot spin the loop.
      if (service && ['createContainer', 'startContainer', 'restartContainer', 'pullImage'].includes(step.kind)) {
        history = recordRestart(history, service, now());
        lastErrors[service] = `${description} failed: ${message}`;
      }
    }
  }

  function reconcileOnce(opts: { timeLimitMs?: number } = {}): Promise<ReconcileResult> {
    const next = queue.then(() => run(opts.timeLimitMs ?? options.timeLimitMs ?? 120_000));
    queue = next.catch(() => undefined);
    return next;
  }

  function schedule(delayMs: number): void {
    if (!running) return;
    const due = Date.now() + Math.max(0, delayMs);
    if (timer && timerDue <= due) return;
    if (timer) clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(() => {
      timer = undefined;
      timerDue = Infinity;
      void loopOnce();
    }, Math.max(0, delayMs));
  }

  async function loopOnce(): Promise<void> {
    if (inFlight) {
      rerunRequested = true;
      return;
    }
    rerunRequested = false;
    inFlight = reconcileOnce();
    let result: ReconcileResult | undefined;
    try {
      result = await inFlight;
    } catch (error) {
      log.error({ err: error }, 'stack: reconcile failed unexpectedly');
    } finally {
      inFlight = undefined;
    }
    if (!running) return;
    if (rerunRequested) return schedule(debounceMs);
    // Wake up when the earliest backoff ends rather than at the next interval.
    const retries = (result?.waiting ?? []).flatMap((s) => (s.kind === 'backoff' ? [s.retryAt] : []));
    const untilRetry = retries.length > 0 ? Math.min(...retries) - now() + 50 : Infinity;
    const pendingHealth = result?.waiting.some((s) => s.kind === 'waitHealthy') ? 1000 : Infinity;
    schedule(Math.min(intervalMs, untilRetry, pendingHealth));
  }

  async function subscribeEvents(): Promise<void> {
    if (!running) return;
    try {
      const project = options.projectName ?? (await resolveInputs()).desired.project;
      // Only events that change what the planner sees: healthchecks alone emit exec_* events
      // every few seconds per service, which must not wake the loop.
      const stream = await docker.getEvents({ filters: { type: ['container'], event: [...STATE_EVENTS], ...stackFilter(project) } });
      if (!running) {
        (stream as unknown as { destroy?: () => void }).destroy?.();
        return;
      }
      events = stream;
      stream.on('data', () => schedule(debounceMs));
      const resubscribe = () => {
        if (events !== stream || !running) return;
        events = undefined;
        eventsRetry = setTimeout(() => void subscribeEvents(), 2000);
      };
      stream.on('error', resubscribe);
      stream.on('end', resubscribe);
    } catch (error) {
      log.warn({ err: error }, 'stack: cannot subscribe to Docker events; relying on the interval');
      eventsRetry = setTimeout(() => void subscribeEvents(), 5000);
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      schedule(0);
      void subscribeEvents();
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      if (eventsRetry) clearTimeout(eventsRetry);
      timer = undefined;
      timerDue = Infinity;
      const stream = events as unknown as { destroy?: () => void } | undefined;
      events = undefined;
      stream?.destroy?.();
      aborting = true;
      try {
        await inFlight?.catch(() => undefined);
      } finally {
        aborting = false;
      }
    },
    reconcileOnce,
    status() {
      return lastStatus;
    },
  };
}
