import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { DesiredStack } from '../../shared/compose/desired-stack.ts';
import type { Variables } from '../../shared/compose/interpolate.ts';
import { loadComposeStack } from '../../shared/compose/load.ts';
import type { ImageLock, Platform } from '../../shared/contracts/image-lock.ts';
import { readCurrentState, type CurrentState } from './current-state.ts';
import { createExecutors, runStep, type StepExecutors } from './executors.ts';
import type { StackHold } from './plan-context.ts';
import { planNextSteps, type Plan } from './planner.ts';
import { pruneRestartHistory, recordRestart, type BackoffPolicy, type RestartHistory } from './restart-backoff.ts';
import type { ServiceStatus } from './service-status.ts';
import { describeStep, isWaitStep, stepTarget, type Step } from './steps.ts';

/** What every run needs and no run changes. */
export interface ReconcileSettings {
  docker: Dockerode;
  log: Logger;
  /** Compose files, merged in order; re-read on every run (an update may replace them). */
  composeFiles: string[];
  variables: () => Promise<Variables>;
  imageLock: () => Promise<ImageLock>;
  /** Overrides the compose `name:`. */
  projectName?: string;
  platform: Platform;
  allowPull: boolean;
  removeVolumes: boolean;
  backoff: BackoffPolicy;
  /** Services kept stopped; re-read on every run (a restore sets and lifts it). */
  hold: () => Promise<StackHold | undefined>;
  /** Clock for the planner. */
  now: () => number;
}

export interface ExecutedStep {
  step: Step;
  description: string;
  ok: boolean;
  error?: string;
  ms: number;
}

/** Where a run stopped with a stack-level problem. */
export type ReconcileStage = 'load-desired' | 'read-current' | 'plan' | 'execute';

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
  /** The step the problem stopped the run in: `load-desired` means the stack could not be loaded at all. */
  errorStage?: ReconcileStage;
  startedAt: number;
  durationMs: number;
}

export interface StackStatus {
  project?: string;
  /** Epoch ms of the last finished reconcile. */
  updatedAt?: number;
  converged: boolean;
  error?: string;
  errorStage?: ReconcileStage;
  services: Record<string, ServiceStatus>;
}

/** What the reconciler keeps between runs; everything else is read from Docker every time. */
export interface ReconcileMemory {
  history: RestartHistory;
  /** The last failed action per service, shown until the service recovers. */
  lastErrors: Record<string, string>;
  /** What the last finished run found. */
  status: StackStatus;
}

export function emptyMemory(): ReconcileMemory {
  return { history: {}, lastErrors: {}, status: { converged: false, services: {} } };
}

/** How often one run may repeat the same action on the same target (a crash restart happens at most twice). */
const MAX_REPEATS_PER_RUN = 3;

/** One run's context: what it was given, what it loaded, and what it has done so far. */
interface RunContext {
  settings: ReconcileSettings;
  memory: ReconcileMemory;
  /** Epoch ms after which the run stops starting new rounds and health waits give up. */
  deadline: () => number;
  result: ReconcileResult;
  stage: ReconcileStage;
  executors: StepExecutors;
  /** Targets whose action failed, or repeated too often, in this run: left to the next run. */
  givenUp: Set<string>;
  repeats: Map<string, number>;
}

/**
 * One reconcile: load desired → (read current → plan → execute)* → record. Rounds repeat
 * until the plan is empty, only waits remain, or the deadline passes. Never throws for
 * stack problems: they end up in the result's `error`, and in `memory.status`.
 */
export async function reconcileRun(settings: ReconcileSettings, memory: ReconcileMemory, deadline: () => number): Promise<ReconcileResult> {
  const startedAt = Date.now();
  const result: ReconcileResult = { converged: false, timedOut: false, iterations: 0, executed: [], waiting: [], services: {}, startedAt, durationMs: 0 };
  const run: RunContext = {
    settings,
    memory,
    deadline,
    result,
    stage: 'load-desired',
    executors: createExecutors({ docker: settings.docker, log: settings.log, deadline }),
    givenUp: new Set(),
    repeats: new Map(),
  };
  try {
    const stack = await loadDesired(run);
    for (;;) {
      result.iterations++;
      const plan = planRound(run, stack, await readCurrent(run, stack.desired));
      if (plan.steps.length === 0) {
        result.converged = true;
        break;
      }
      if (Date.now() >= deadline()) {
        result.timedOut = true;
        break;
      }
      if (!(await executeRound(run, plan))) break;
    }
  } catch (error) {
    recordProblem(run, error);
  }
  return record(run);
}

/** The stack as the compose files and the image lock describe it now. */
interface LoadedStack {
  desired: DesiredStack;
  lock: ImageLock;
  hold: StackHold | undefined;
}

async function loadDesired(run: RunContext): Promise<LoadedStack> {
  run.stage = 'load-desired';
  const { settings } = run;
  const variables = await settings.variables();
  const lock = await settings.imageLock();
  const desired = await loadComposeStack({ files: settings.composeFiles, variables, projectName: settings.projectName });
  run.result.project = desired.project;
  return { desired, lock, hold: await settings.hold() };
}

async function readCurrent(run: RunContext, desired: DesiredStack): Promise<CurrentState> {
  run.stage = 'read-current';
  return readCurrentState(run.settings.docker, desired.project);
}

function planRound(run: RunContext, stack: LoadedStack, current: CurrentState): Plan {
  run.stage = 'plan';
  const { settings, memory, result } = run;
  const now = settings.now();
  memory.history = pruneRestartHistory(memory.history, current.containers, now, settings.backoff);
  const plan = planNextSteps(stack.desired, current, {
    now,
    lock: stack.lock,
    platform: settings.platform,
    restartHistory: memory.history,
    backoff: settings.backoff,
    allowPull: settings.allowPull,
    removeVolumes: settings.removeVolumes,
    lastErrors: { ...memory.lastErrors },
    hold: stack.hold,
  });
  for (const [name, status] of Object.entries(plan.services)) {
    if (status.state === 'running' || status.state === 'healthy') delete memory.lastErrors[name];
  }
  result.services = plan.services;
  result.waiting = plan.steps.filter(isWaitStep);
  return plan;
}

/**
 * Runs the round's actions. With none left (only waits), logs the backoffs and waits out
 * the health waits. Returns false when nothing more can happen in this run.
 */
async function executeRound(run: RunContext, plan: Plan): Promise<boolean> {
  run.stage = 'execute';
  const actions = admitActions(run, plan.steps);
  if (actions.length > 0) {
    await Promise.all(actions.map((step) => execute(run, step)));
    return true;
  }
  await Promise.all(plan.steps.filter((s) => s.kind === 'backoff' || s.kind === 'reportCrashLoop').map((s) => runStep(run.executors, s)));
  const healthWaits = plan.steps.filter((s) => s.kind === 'waitHealthy');
  if (healthWaits.length === 0) return false; // only backoffs, or actions already given up this run
  await Promise.all(healthWaits.map((step) => execute(run, step)));
  return true;
}

/**
 * The round's actions minus those given up in this run. An action that keeps
 * "succeeding" without changing Docker's state (a bug, or Docker disagreeing with us)
 * must not spin until the deadline, so a target repeated too often is given up too.
 */
function admitActions(run: RunContext, steps: Step[]): Step[] {
  const actions = steps.filter((s) => !isWaitStep(s) && !run.givenUp.has(stepTarget(s)));
  for (const step of actions) {
    const key = `${step.kind}:${stepTarget(step)}`;
    const count = (run.repeats.get(key) ?? 0) + 1;
    run.repeats.set(key, count);
    if (count > MAX_REPEATS_PER_RUN) {
      run.givenUp.add(stepTarget(step));
      run.settings.log.warn({ step: step.kind }, `stack: ${describeStep(step)} repeated ${MAX_REPEATS_PER_RUN} times; leaving it to the next run`);
    }
  }
  return actions.filter((s) => !run.givenUp.has(stepTarget(s)));
}

/** Runs one step and records what it means for the service's restart history and last error. */
async function execute(run: RunContext, step: Step): Promise<void> {
  const { settings, memory, result } = run;
  const description = describeStep(step);
  const started = Date.now();
  const service = 'service' in step ? step.service : undefined;
  try {
    await runStep(run.executors, step);
    const countsAsRestart = (step.kind === 'startContainer' && step.reason !== 'new') || step.kind === 'restartContainer';
    if (countsAsRestart && service) memory.history = recordRestart(memory.history, service, settings.now());
    result.executed.push({ step, description, ok: true, ms: Date.now() - started });
    if (!isWaitStep(step)) settings.log.info({ step: step.kind, service }, `stack: ${description}`);
  } catch (error) {
    const message = (error as Error).message;
    if (!isWaitStep(step)) run.givenUp.add(stepTarget(step));
    result.executed.push({ step, description, ok: false, error: message, ms: Date.now() - started });
    settings.log.error({ step: step.kind, service, err: error }, `stack: ${description} failed: ${message}`);
    // A failed create/start/pull backs off like a crash, so a port clash cannot spin the loop.
    if (service && ['createContainer', 'startContainer', 'restartContainer', 'pullImage'].includes(step.kind)) {
      memory.history = recordRestart(memory.history, service, settings.now());
      memory.lastErrors[service] = `${description} failed: ${message}`;
    }
  }
}

function recordProblem(run: RunContext, error: unknown): void {
  const message = (error as Error).message;
  run.result.errorStage = run.stage;
  if (run.stage === 'load-desired') {
    run.result.error = message;
    run.settings.log.error({ err: error }, `stack: cannot load the desired stack: ${message}`);
  } else {
    // Docker down or restarting, most likely; the next run starts over from fresh state.
    run.result.error = `reconcile failed: ${message}`;
    run.settings.log.error({ err: error, stage: run.stage }, `stack: ${run.result.error}`);
  }
}

/** Finishes the result and keeps what it found as the stack's status. */
function record(run: RunContext): ReconcileResult {
  const { result, memory } = run;
  result.durationMs = Date.now() - result.startedAt;
  memory.status = {
    converged: result.converged,
    // A stack-level error (bad compose edit, Docker down) keeps the last known per-service picture.
    services: result.error && Object.keys(result.services).length === 0 ? memory.status.services : result.services,
    updatedAt: Date.now(),
    ...(result.project !== undefined && { project: result.project }),
    ...(result.error !== undefined && { error: result.error, errorStage: result.errorStage }),
  };
  return result;
}
