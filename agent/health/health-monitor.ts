import type { Logger } from 'pino';
import type { CheckResult, HealthCheck } from './checks/check.ts';

/** A check's latest result, with when it was taken and since when its status has held. */
export interface MonitoredResult extends CheckResult {
  checkedAt: number;
  /** Epoch ms at which the result entered its current status; kept across restarts by the history. */
  since: number;
}

/** What the monitor needs of the persisted history (agent/health/health-history.ts). */
export interface StatusHistory {
  observe(result: CheckResult, now: number): { since: number; changed: boolean };
  flush(): Promise<unknown>;
}

/** What the monitor hands its results to after each round (agent/health/repairs). */
export interface RoundListener {
  afterRound(results: readonly MonitoredResult[], now: number): Promise<void>;
}

export interface HealthMonitorOptions {
  checks: readonly HealthCheck[];
  history: StatusHistory;
  listeners?: readonly RoundListener[];
  /** How often the monitor looks for due checks (HEALTH_ROUND_INTERVAL_MS). */
  tickMs?: number;
  now?: () => number;
}

export interface HealthMonitor {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs the checks that are due (all of them with `all`), then the listeners. */
  round(opts?: { all?: boolean }): Promise<void>;
  results(): MonitoredResult[];
  /** Epoch ms of the end of the last round (or of the last tick that found no check due), undefined before the first. */
  lastRoundAt(): number | undefined;
  /** What the rounds cost: how many, their CPU time (user + system, the whole process while a round ran) and the first one's end. */
  cost(): { rounds: number; cpuSeconds: number; firstRoundEndedAt?: number };
}

/**
 * Ticks every 15 s, so a check runs at most 15 s after it is due; a tick runs a round only
 * when some check is due (the most frequent, Docker's ping, every 30 s). A plain timer, not
 * node-cron: this is an interval, not a calendar time, and node-cron works out every tick
 * through Intl.DateTimeFormat, whose first use maps ~6 MB of ICU data into the agent.
 */
export const HEALTH_ROUND_INTERVAL_MS = 15_000;

/**
 * Runs the health checks on their own intervals, keeps each check's latest results (a
 * check's results replace all its earlier ones, so a removed disk's result goes away), and
 * records every status in the persisted history so "since" survives restarts. A check
 * that throws is itself a degraded result: a broken check must not look like a good one.
 */
export function createHealthMonitor(opts: HealthMonitorOptions, log: Logger): HealthMonitor {
  const now = opts.now ?? Date.now;
  const lastRun = new Map<string, number>();
  const byCheck = new Map<string, MonitoredResult[]>();
  let lastRound: number | undefined;
  let firstRoundEndedAt: number | undefined;
  let rounds = 0;
  let cpuMicros = 0;
  let ticker: NodeJS.Timeout | undefined;
  let roundRunning = false;
  let queue: Promise<unknown> = Promise.resolve();

  const runCheck = async (check: HealthCheck): Promise<CheckResult[]> => {
    try {
      return await check.run();
    } catch (err) {
      log.warn({ err, check: check.name }, 'a health check failed to run');
      return [{ check: check.name, status: 'degraded', reason: `The ${check.name} check could not run: ${(err as Error).message}`, action: 'If this lasts, report it to Memu support.', metrics: [] }];
    }
  };

  const doRound = async (all: boolean) => {
    const cpuBefore = process.cpuUsage();
    const at = now();
    const due = opts.checks.filter((c) => all || (lastRun.get(c.name) ?? -Infinity) + c.intervalMs <= at);
    // Nothing new to judge, nothing to report or repair: a tick between checks costs nothing.
    // It still counts as the monitor being alive (the watchdog's probe): every result is within its interval.
    if (due.length === 0 && !all) {
      lastRound = at;
      return;
    }
    // Checks read different things; running them side by side keeps the round short.
    const outcomes = await Promise.all(
      due.map(async (c) => {
        const started = now();
        const results = await runCheck(c);
        return { check: c, results, ms: now() - started };
      }),
    );
    const checkedAt = now();
    // Which check holds a round up is what an operator needs when the health answer is slow.
    const durations = Object.fromEntries(outcomes.map((o) => [o.check.name, o.ms]));
    if (firstRoundEndedAt === undefined) log.info({ ms: checkedAt - at, checks: durations }, 'first health round done');
    else log.debug({ ms: checkedAt - at, checks: durations }, 'health round done');
    for (const { check, results } of outcomes) {
      lastRun.set(check.name, at);
      byCheck.set(
        check.name,
        results.map((r) => {
          const { since, changed } = opts.history.observe(r, checkedAt);
          if (changed) log.info({ check: r.check, status: r.status, reason: r.reason }, 'health check changed');
          return { ...r, checkedAt, since };
        }),
      );
    }
    await opts.history.flush().catch((err: unknown) => log.warn({ err }, 'could not save the health history'));
    const results = [...byCheck.values()].flat();
    for (const listener of opts.listeners ?? []) {
      await listener.afterRound(results, now()).catch((err: unknown) => log.error({ err }, 'acting on the health round failed'));
    }
    lastRound = now();
    firstRoundEndedAt ??= lastRound;
    rounds++;
    const cpu = process.cpuUsage(cpuBefore);
    cpuMicros += cpu.user + cpu.system;
  };

  const round = (o: { all?: boolean } = {}) => {
    // One round at a time; a round asked for while one runs waits for it and runs after.
    const next = queue.then(() => doRound(o.all ?? false));
    queue = next.catch(() => undefined);
    return next;
  };

  return {
    async start() {
      // Not awaited: the agent serves (saying `starting`) while the first round runs.
      void round({ all: true });
      ticker = setInterval(() => {
        // A round still running (a slow check) is not queued behind: the next tick catches up.
        if (roundRunning) return;
        roundRunning = true;
        void round()
          .catch(() => undefined)
          .finally(() => (roundRunning = false));
      }, opts.tickMs ?? HEALTH_ROUND_INTERVAL_MS);
    },
    async stop() {
      clearInterval(ticker);
      ticker = undefined;
      await queue;
    },
    round,
    results: () => [...byCheck.values()].flat(),
    lastRoundAt: () => lastRound,
    cost: () => ({ rounds, cpuSeconds: cpuMicros / 1e6, ...(firstRoundEndedAt !== undefined ? { firstRoundEndedAt } : {}) }),
  };
}
