import type { Logger } from 'pino';
import type { CheckResult } from '../checks/check.ts';
import type { HealthHistory } from '../health-history.ts';
import { count } from '../checks/wording.ts';
import { DAY, HOUR, MINUTE, type Repair, type RepairLimits, type RepairOutcome, type RepairView } from './repair.ts';

/** Why a repair that the results call for runs now or not. */
export type RepairDecision =
  | { repair: string; run: true }
  | {
      repair: string;
      run: false;
      /** For a person: which limit holds it. */
      reason: string;
      /** Epoch ms from which it may run again. */
      retryAt: number;
    };

/**
 * The loop breaker for one repair (pure): with `minGapMs` since the last attempt and
 * under every window's maximum it may run; otherwise it waits until the limit that holds
 * it longest lets go.
 */
export function limitDecision(name: string, limits: RepairLimits, view: Pick<RepairView, 'now' | 'attemptTimes' | 'lastAttempt'>): RepairDecision {
  const { now } = view;
  const holds: { reason: string; retryAt: number }[] = [];
  const last = view.lastAttempt(name);
  if (last !== undefined && now - last < limits.minGapMs) {
    holds.push({ reason: `tried ${Math.round((now - last) / 1000)} s ago; waits ${Math.round(limits.minGapMs / 1000)} s between attempts`, retryAt: last + limits.minGapMs });
  }
  for (const w of limits.windows) {
    // Inside the window means later than `now - windowMs`, so retryAt is the first instant allowed.
    const inWindow = view.attemptTimes(name, now - w.windowMs + 1);
    if (inWindow.length >= w.max) {
      // The attempt that must leave the window before another is allowed.
      const oldestCounted = inWindow[inWindow.length - w.max]!;
      holds.push({ reason: `tried ${count(inWindow.length, 'time')} in the last ${describeWindow(w.windowMs)} (at most ${w.max})`, retryAt: oldestCounted + w.windowMs });
    }
  }
  if (holds.length === 0) return { repair: name, run: true };
  const longest = holds.reduce((a, b) => (b.retryAt > a.retryAt ? b : a));
  return { repair: name, run: false, reason: longest.reason, retryAt: longest.retryAt };
}

/**
 * This round's plan (pure): the repairs whose results call for them, in the given order
 * (the order is the priority: Docker first, then disk space, the reserve, reboot last),
 * each with whether its loop breaker lets it run.
 */
export function planRepairs(repairs: readonly Repair[], results: readonly CheckResult[], view: RepairView): RepairDecision[] {
  return repairs.filter((r) => r.answers(results, view)).map((r) => limitDecision(r.name, r.limits, view));
}

function describeWindow(ms: number): string {
  if (ms % DAY === 0) return ms === DAY ? 'day' : `${ms / DAY} days`;
  if (ms % HOUR === 0) return ms === HOUR ? 'hour' : `${ms / HOUR} hours`;
  return `${Math.round(ms / MINUTE)} minutes`;
}

/** The history as the repairs' predicates see it at `now`. */
export function historyView(history: Pick<HealthHistory, 'attemptsSince' | 'attemptTimes' | 'lastAttempt' | 'checks'>, now: number): RepairView {
  const checks = history.checks();
  return {
    now,
    attemptsSince: (repair, t) => history.attemptsSince(repair, t),
    attemptTimes: (repair, t) => history.attemptTimes(repair, t),
    lastAttempt: (repair) => history.lastAttempt(repair),
    since: (check) => checks[check]?.since,
  };
}

export interface RepairRun {
  repair: string;
  at: number;
  outcome: RepairOutcome;
  durationMs: number;
}

export interface RoundReport {
  decisions: RepairDecision[];
  ran: RepairRun[];
}

export interface Repairer {
  /** Decides and runs this round's repairs, one at a time, recording each; never throws. */
  round(results: readonly CheckResult[]): Promise<RoundReport>;
  /**
   * The health monitor's listener (RoundListener): starts a round on the monitor's
   * results and returns at once, so a Docker restart that takes minutes never delays the
   * checks (nor the watchdog that watches them). While a round runs, only the latest
   * results wait for the next.
   */
  afterRound(results: readonly CheckResult[]): Promise<void>;
  /** The last round's decisions (for the health report: "restart-docker held: tried 2 times…"). */
  lastDecisions(): readonly RepairDecision[];
}

export interface RepairerOptions {
  repairs: readonly Repair[];
  history: HealthHistory;
  log: Logger;
  now?: () => number;
}

/**
 * Runs what planRepairs decides. Before each repair the plan is made again, so a repair
 * that ran earlier in the round counts for the next (a reboot waits for Docker's restart
 * to be recorded). An attempt is recorded and written as `started` before it runs, so a
 * repair that ends the agent (a reboot) or an agent killed mid-repair still counts.
 */
export function createRepairer(opts: RepairerOptions): Repairer {
  const now = opts.now ?? Date.now;
  const { history, log } = opts;
  const inFlight = new Set<string>();
  let decisions: RepairDecision[] = [];
  let roundRunning: Promise<unknown> = Promise.resolve();
  let pending: readonly CheckResult[] | undefined;
  let busy = false;

  const view = (): RepairView => historyView(history, now());

  async function runOne(repair: Repair, results: readonly CheckResult[]): Promise<RepairRun | undefined> {
    if (inFlight.has(repair.name)) {
      log.warn({ repair: repair.name }, 'a repair is still running from an earlier round; not starting it again');
      return undefined;
    }
    if (repair.needed && !(await repair.needed(results).catch(() => true))) return undefined;
    const at = now();
    history.recordRepair({ repair: repair.name, at, outcome: 'started', message: 'started' });
    await history.flush().catch((err: unknown) => log.error({ err }, 'cannot write the health history'));
    log.info({ repair: repair.name }, 'running a repair');
    inFlight.add(repair.name);
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const running = repair
      .run(results)
      .catch((err: unknown): RepairOutcome => ({ ok: false, message: `the repair failed: ${(err as Error).message}` }))
      .finally(() => inFlight.delete(repair.name));
    const timedOut = new Promise<RepairOutcome>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, message: `did not finish within ${Math.round(repair.timeoutMs / 1000)} s` }), repair.timeoutMs);
    });
    const outcome = await Promise.race([running, timedOut]);
    clearTimeout(timer);
    const durationMs = Date.now() - started;
    history.recordRepair({ repair: repair.name, at, outcome: outcome.ok ? 'ok' : 'failed', message: outcome.message, ...(outcome.freedBytes !== undefined && { freedBytes: outcome.freedBytes }) });
    await history.flush().catch((err: unknown) => log.error({ err }, 'cannot write the health history'));
    (outcome.ok ? log.info : log.warn).call(log, { repair: repair.name, ok: outcome.ok, durationMs, freedBytes: outcome.freedBytes }, outcome.message);
    return { repair: repair.name, at, outcome, durationMs };
  }

  async function round(results: readonly CheckResult[]): Promise<RoundReport> {
    const ran: RepairRun[] = [];
    const roundDecisions: RepairDecision[] = [];
    for (const repair of opts.repairs) {
      const [decision] = planRepairs([repair], results, view());
      if (!decision) continue;
      roundDecisions.push(decision);
      if (!decision.run) continue;
      const done = await runOne(repair, results);
      if (done) ran.push(done);
    }
    decisions = roundDecisions;
    return { decisions: roundDecisions, ran };
  }

  const serialRound = (results: readonly CheckResult[]): Promise<RoundReport> => {
    // Rounds never overlap: a slow round delays the next rather than racing it.
    const next = roundRunning.then(() => round(results));
    roundRunning = next.catch(() => undefined);
    return next;
  };
  return {
    round: serialRound,
    async afterRound(results) {
      const waiting = pending !== undefined;
      pending = results;
      if (waiting || busy) return;
      busy = true;
      void (async () => {
        while (pending !== undefined) {
          const next = pending;
          pending = undefined;
          await serialRound(next).catch((err: unknown) => log.error({ err }, 'a repair round failed'));
        }
        busy = false;
      })();
    },
    lastDecisions: () => decisions,
  };
}
