import type { Logger } from 'pino';
import type { ReconcileResult } from './reconcile-run.ts';

/** What the loop is doing, as the stack's status shows it. */
export type LoopState = 'not started' | 'running' | 'stopped' | `paused: ${string}`;

export interface ReconcileLoopOptions {
  /** One reconcile. `windDown()` turns true when it should end soon: its health waits give up. */
  reconcile(timeLimitMs: number, windDown: () => boolean): Promise<ReconcileResult>;
  /** Starts watching for changes worth a reconcile (Docker events); closed by stop(). */
  watch(onChange: () => void): { close(): void };
  /** The loop re-runs this often even without changes. */
  intervalMs: number;
  /** Coalesces bursts of changes into one run. */
  debounceMs: number;
  /** Upper bound of one reconcile (including health waits). */
  timeLimitMs: number;
  now: () => number;
  log: Logger;
}

export interface ReconcileLoop {
  /** A reconcile now, then on every change, on the interval and when a backoff ends. */
  start(): void;
  /** Stops the loop and waits for its run in progress. */
  stop(): Promise<void>;
  /** One reconcile, after any run or exclusive work before it. */
  reconcileOnce(options?: { timeLimitMs?: number }): Promise<ReconcileResult>;
  /**
   * Runs `fn` with the stack held still (balena's withExclusive): waits for a reconcile in
   * progress, starts none while `fn` runs (changes and timers are deferred), and resumes
   * with one reconcile afterwards, also when `fn` throws.
   */
  runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T>;
  state(): LoopState;
}

/** The loop's scheduling: when a reconcile runs, never two at once, and never during exclusive work. */
export function createReconcileLoop(options: ReconcileLoopOptions): ReconcileLoop {
  const { log } = options;
  const lane = serialLane();
  let started = false;
  let running = false;
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  let timerDue = Infinity;
  let watch: { close(): void } | undefined;
  /** The loop's own run, queued or in progress. */
  let loopRun: Promise<ReconcileResult> | undefined;
  let rerunRequested = false;
  /** Reasons of the exclusive work asked for and not yet finished, in order. */
  const holders: string[] = [];
  let activeHolder: string | undefined;

  const windDown = () => stopping || holders.length > 0;

  function reconcileOnce(opts: { timeLimitMs?: number } = {}): Promise<ReconcileResult> {
    const timeLimitMs = opts.timeLimitMs ?? options.timeLimitMs;
    return lane.run(() => options.reconcile(timeLimitMs, windDown));
  }

  function schedule(delayMs: number): void {
    if (!running) return;
    const due = Date.now() + Math.max(0, delayMs);
    if (timer && timerDue <= due) return;
    clearTimeout(timer);
    timerDue = due;
    timer = setTimeout(() => {
      timer = undefined;
      timerDue = Infinity;
      void loopOnce();
    }, Math.max(0, delayMs));
  }

  async function loopOnce(): Promise<void> {
    // Held by exclusive work: its end schedules the one reconcile that catches up.
    if (holders.length > 0) return;
    if (loopRun) {
      rerunRequested = true;
      return;
    }
    rerunRequested = false;
    let result: ReconcileResult | undefined;
    loopRun = reconcileOnce();
    try {
      result = await loopRun;
    } catch (error) {
      log.error({ err: error }, 'stack: reconcile failed unexpectedly');
    } finally {
      loopRun = undefined;
    }
    if (!running || holders.length > 0) return;
    if (rerunRequested) return schedule(options.debounceMs);
    schedule(nextWakeMs(result, options.intervalMs, options.now()));
  }

  async function runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T> {
    holders.push(reason);
    try {
      return await lane.run(async () => {
        activeHolder = reason;
        log.info({ reason }, 'stack: paused for exclusive work');
        try {
          return await fn();
        } finally {
          activeHolder = undefined;
        }
      });
    } finally {
      holders.splice(holders.indexOf(reason), 1);
      if (holders.length === 0) {
        log.info({ reason }, 'stack: resumed after exclusive work');
        schedule(0);
      }
    }
  }

  return {
    start() {
      if (running) return;
      started = true;
      running = true;
      schedule(0);
      watch = options.watch(() => schedule(options.debounceMs));
    },
    async stop() {
      running = false;
      clearTimeout(timer);
      timer = undefined;
      timerDue = Infinity;
      watch?.close();
      watch = undefined;
      stopping = true;
      try {
        await loopRun?.catch(() => undefined);
      } finally {
        stopping = false;
      }
    },
    reconcileOnce,
    runExclusive,
    state() {
      if (activeHolder !== undefined) return `paused: ${activeHolder}`;
      return running ? 'running' : started ? 'stopped' : 'not started';
    },
  };
}

/** When a backoff ends or a health check is pending, wake up then rather than at the next interval. */
function nextWakeMs(result: ReconcileResult | undefined, intervalMs: number, now: number): number {
  const retries = (result?.waiting ?? []).flatMap((s) => (s.kind === 'backoff' ? [s.retryAt] : []));
  const untilRetry = retries.length > 0 ? Math.min(...retries) - now + 50 : Infinity;
  const pendingHealth = result?.waiting.some((s) => s.kind === 'waitHealthy') ? 1000 : Infinity;
  return Math.min(intervalMs, untilRetry, pendingHealth);
}

/** Runs tasks one at a time, in the order they were handed in. */
function serialLane() {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      const next = tail.then(task);
      tail = next.catch(() => undefined);
      return next;
    },
  };
}
