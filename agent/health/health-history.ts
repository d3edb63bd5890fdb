import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { z } from 'zod';
import { writeJsonDurably } from '../../shared/files/durable-files.ts';
import { formatZodIssues, isNotFound } from '../../shared/errors.ts';
import type { CheckResult, CheckStatus } from './checks/check.ts';

/**
 * What the box's health has been, kept on the data partition so that an agent restart or
 * a reboot neither forgets since when something is wrong nor resets the repairs' loop
 * breakers (a reboot that forgot it had rebooted could reboot forever).
 */

/** Events kept, newest first: a few months of a box that is mostly well, small enough to rewrite whole. */
export const HISTORY_EVENT_LIMIT = 500;
/**
 * Attempt times kept per repair for the loop breakers: their longest window is a day,
 * so a week is plenty, and 100 bounds a repair that somehow ran very often.
 */
export const ATTEMPT_RETENTION_MS = 7 * 24 * 3600_000;
export const ATTEMPTS_PER_REPAIR_LIMIT = 100;

const FORMAT = 'memu-health-history/1';
const statusSchema = z.enum(['ok', 'degraded', 'unhealthy']);

const transitionSchema = z.object({
  kind: z.literal('transition'),
  check: z.string(),
  /** Absent for a check seen for the first time. */
  from: statusSchema.optional(),
  to: statusSchema,
  at: z.number(),
  reason: z.string(),
});

/** `started` is written before a repair runs, so one that kills the agent (a reboot) still counts. */
const repairOutcomeSchema = z.enum(['started', 'ok', 'failed']);

const repairEventSchema = z.object({
  kind: z.literal('repair'),
  repair: z.string(),
  at: z.number(),
  outcome: repairOutcomeSchema,
  message: z.string(),
  freedBytes: z.number().optional(),
});

const historyFileSchema = z.object({
  format: z.literal(FORMAT),
  checks: z.record(z.object({ status: statusSchema, since: z.number(), reason: z.string() })),
  events: z.array(z.discriminatedUnion('kind', [transitionSchema, repairEventSchema])),
  repairAttempts: z.record(z.array(z.number())),
});

export type HistoryFile = z.infer<typeof historyFileSchema>;
export type TransitionEvent = z.infer<typeof transitionSchema>;
export type RepairOutcomeWord = z.infer<typeof repairOutcomeSchema>;
export type RepairEvent = z.infer<typeof repairEventSchema>;
export type HealthEvent = TransitionEvent | RepairEvent;
export type RepairAttempt = Omit<RepairEvent, 'kind'>;

export interface CheckState {
  status: CheckStatus;
  /** Epoch ms it entered this status. */
  since: number;
  reason: string;
}

export interface HealthHistory {
  /** Where it is written; undefined for a history kept in memory only. */
  readonly path: string | undefined;
  /**
   * Takes one round's result for a check: returns since when the check has had this
   * status, and whether the status changed (a first sight counts as a change).
   */
  observe(result: Pick<CheckResult, 'check' | 'status' | 'reason'>, now: number): { since: number; changed: boolean };
  /** Every check's current state, by result name. */
  checks(): Readonly<Record<string, CheckState>>;
  /**
   * Records a repair attempt. A second record for the same repair and `at` replaces the
   * first (`started`, then its outcome) and is not a new attempt.
   */
  recordRepair(attempt: RepairAttempt): void;
  /** Attempts of `repair` at or after `t` (epoch ms), whatever their outcome. */
  attemptsSince(repair: string, t: number): number;
  /** Their times, oldest first. */
  attemptTimes(repair: string, t: number): number[];
  /** Epoch ms of the repair's latest attempt, if any is remembered. */
  lastAttempt(repair: string): number | undefined;
  /** Transitions and repairs, newest first. */
  events(limit?: number): HealthEvent[];
  /** Writes the file when something worth keeping changed since the last write; resolves whether it wrote. */
  flush(): Promise<boolean>;
}

export function emptyHistory(): HistoryFile {
  return { format: FORMAT, checks: {}, events: [], repairAttempts: {} };
}

/**
 * Reads the history; a missing file starts empty, and so does an unreadable or torn one
 * (with a warning): health supervision must come up whatever the file holds. `now` drops
 * attempts that left the retention window.
 */
export async function loadHealthHistory(path: string, now: number, log: Logger): Promise<HealthHistory> {
  let data = emptyHistory();
  try {
    const text = await readFile(path, 'utf8');
    const parsed = historyFileSchema.safeParse(JSON.parse(text));
    if (parsed.success) data = parsed.data;
    else log.warn({ path, problems: formatZodIssues(parsed.error.issues) }, 'the health history is not in the expected form; starting a new one');
  } catch (err) {
    if (isNotFound(err)) log.info({ path }, 'no health history yet; starting a new one');
    else log.warn({ path, err: (err as Error).message }, 'the health history could not be read (torn or damaged); starting a new one');
  }
  return healthHistory(path, data, now);
}

/** A history over `data` (taken over, not copied), written to `path` on flush (never without a path). */
export function healthHistory(path: string | undefined, data: HistoryFile, now: number): HealthHistory {
  let dirty = false;
  /** Flushes run one after another, so an older snapshot never lands after a newer one. */
  let writing: Promise<unknown> = Promise.resolve();
  for (const [repair, times] of Object.entries(data.repairAttempts)) {
    const kept = times.filter((t) => t >= now - ATTEMPT_RETENTION_MS).slice(-ATTEMPTS_PER_REPAIR_LIMIT);
    if (kept.length === 0) delete data.repairAttempts[repair];
    else data.repairAttempts[repair] = kept;
  }

  const addEvent = (event: HealthEvent) => {
    data.events.unshift(event);
    if (data.events.length > HISTORY_EVENT_LIMIT) data.events.length = HISTORY_EVENT_LIMIT;
    dirty = true;
  };

  return {
    path,
    observe(result, at) {
      const previous = data.checks[result.check];
      if (previous && previous.status === result.status) {
        // A reason's numbers change every round; they are written with the next real
        // change, so a well box does not rewrite the file (and wear its card) every minute.
        previous.reason = result.reason;
        return { since: previous.since, changed: false };
      }
      data.checks[result.check] = { status: result.status, since: at, reason: result.reason };
      dirty = true;
      // A check first seen well is not news; one first seen unwell is.
      if (previous || result.status !== 'ok') {
        addEvent({ kind: 'transition', check: result.check, ...(previous && { from: previous.status }), to: result.status, at, reason: result.reason });
      }
      return { since: at, changed: true };
    },
    checks: () => data.checks,
    recordRepair(attempt) {
      const event: RepairEvent = { kind: 'repair', ...attempt };
      const same = data.events.findIndex((e) => e.kind === 'repair' && e.repair === attempt.repair && e.at === attempt.at);
      const times = (data.repairAttempts[attempt.repair] ??= []);
      if (same >= 0) {
        data.events[same] = event;
        dirty = true;
      } else {
        addEvent(event);
      }
      if (!times.includes(attempt.at)) {
        times.push(attempt.at);
        times.sort((a, b) => a - b);
        if (times.length > ATTEMPTS_PER_REPAIR_LIMIT) times.splice(0, times.length - ATTEMPTS_PER_REPAIR_LIMIT);
      }
    },
    attemptsSince: (repair, t) => (data.repairAttempts[repair] ?? []).filter((at) => at >= t).length,
    attemptTimes: (repair, t) => (data.repairAttempts[repair] ?? []).filter((at) => at >= t),
    lastAttempt: (repair) => data.repairAttempts[repair]?.at(-1),
    events: (limit = HISTORY_EVENT_LIMIT) => data.events.slice(0, limit),
    flush() {
      const write = writing.then(async () => {
        if (!dirty || path === undefined) return false;
        // Cleared first: a change made while the write runs is written by the next flush.
        dirty = false;
        try {
          await writeJsonDurably(path, data);
        } catch (err) {
          dirty = true;
          throw err;
        }
        return true;
      });
      writing = write.catch(() => undefined);
      return write;
    },
  };
}
