/**
 * When the next backup and integrity check are due, from the family's local time.
 * Computed with Date's local-time methods (the agent runs with the device's time zone
 * in TZ), not a cron library: the agent avoids Intl, and a day's wall-clock time is all a
 * daily schedule needs. Pure, so DST days are unit-tested.
 */

/** `HH:MM`, 24-hour, local time. */
export const DAILY_TIME_PATTERN = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
export const DEFAULT_DAILY_TIME = '03:30';
/** The integrity check reads one part in this many of the repository's data each time: all of it every 8 weeks. */
export const CHECK_SUBSETS = 8;
export const CHECK_INTERVAL_MS = 7 * 24 * 3600_000;

export function parseDailyTime(text: string): { hour: number; minute: number } {
  const m = DAILY_TIME_PATTERN.exec(text);
  if (!m) throw new Error(`the backup time must be HH:MM on a 24-hour clock (like 03:30), not ${JSON.stringify(text)}`);
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/**
 * The first local `HH:MM` strictly after `after`. On the day clocks go forward, a time
 * in the skipped hour comes out an hour later (Date moves it on); on the day they go
 * back, a time in the repeated hour is its first occurrence only, so it runs once.
 */
export function nextDailyTime(after: Date, dailyTime: string): Date {
  const { hour, minute } = parseDailyTime(dailyTime);
  for (let days = 0; days <= 2; days++) {
    const candidate = new Date(after.getFullYear(), after.getMonth(), after.getDate() + days, hour, minute, 0, 0);
    if (candidate.getTime() > after.getTime()) return candidate;
  }
  // Unreachable: two days on is always later.
  throw new Error(`no ${dailyTime} after ${after.toISOString()}`);
}

export interface ScheduleState {
  /** When the last scheduled backup started (epoch ms). */
  lastScheduledRunAt?: number;
  /** When the last integrity check ran. */
  lastCheckAt?: number;
}

export interface ScheduleDecision {
  /** A scheduled backup is due now (its time has passed, perhaps while the box was off). */
  backupDue: boolean;
  /** When the next one is due (the one that is due now, when backupDue). */
  nextBackupAt: Date;
  /** An integrity check is due after the backup. */
  checkDue: boolean;
}

/**
 * What is due at `now`. `since` stands in for the last run when there was none (when
 * backups were set up), so a box set up at noon first backs up at the next 03:30, and a
 * box that was off at 03:30 backs up soon after it starts.
 */
export function scheduleDecision(state: ScheduleState, dailyTime: string, since: number, now: number): ScheduleDecision {
  const next = nextDailyTime(new Date(state.lastScheduledRunAt ?? since), dailyTime);
  const backupDue = next.getTime() <= now;
  return {
    backupDue,
    nextBackupAt: backupDue ? new Date(now) : next,
    // An hour's slack, so a weekly check does not slip a day when a backup took longer last week.
    checkDue: state.lastCheckAt === undefined || now - state.lastCheckAt >= CHECK_INTERVAL_MS - 3600_000,
  };
}
