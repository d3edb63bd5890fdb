import cron, { type ScheduledTask } from 'node-cron';
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
  /** node-cron pattern of the rounds; each round runs the checks whose interval has passed. */
  schedule?: string;
  now?: () => number;
}

export interface HealthMonitor {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Runs the checks that are due (all of them with `all`), then the listeners. */
  round(opts?: { all?: boolean }): Promise<void>;
  results(): MonitoredResult[];
  /** Epoch ms of the end of the last round, undefined before the first. */
  lastRoundAt(): number | undefined;
  /** What the rounds cost: how many, their CPU time (user + system, the whole process while a round ran) and the first one's end. */
  cost(): { rounds: number; cpuSeconds: number; firstRoundEndedAt?: number };
}

/** Every 15 s: the cheapest checks (Docker's ping, PSI) have this interval; costly ones skip most rounds. */
export const DEFAULT_ROUND_SCHEDULE = '*/15 * * * * *';
/** The default schedule's period, for the watchdog's liveness probe. */
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
  let task: ScheduledTask | undefined;
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
    // Checks read different things; running them side by side keeps the round short.
    const outcomes = await Promise.all(due.map(async (c) => ({ check: c, results: await runCheck(c) })));
    const checkedAt = now();
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
      task = cron.schedule(opts.schedule ?? DEFAULT_ROUND_SCHEDULE, () => round(), { name: 'health-round', noOverlap: true });
    },
    async stop() {
      await task?.destroy();
      task = undefined;
      await queue;
    },
    round,
    results: () => [...byCheck.values()].flat(),
    lastRoundAt: () => lastRound,
    cost: () => ({ rounds, cpuSeconds: cpuMicros / 1e6, ...(firstRoundEndedAt !== undefined ? { firstRoundEndedAt } : {}) }),
  };
}
