import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextDailyTime, parseDailyTime, scheduleDecision } from '../../../../agent/backups/backup-schedule.ts';

// The schedule is in the family's local time: these tests run in London, whose clocks go
// forward at 01:00 on 29 March 2026 and back at 02:00 on 25 October 2026.
let savedTz: string | undefined;
beforeAll(() => {
  savedTz = process.env.TZ;
  process.env.TZ = 'Europe/London';
});
afterAll(() => {
  if (savedTz === undefined) delete process.env.TZ;
  else process.env.TZ = savedTz;
});

const iso = (d: Date) => d.toISOString();

describe('nextDailyTime', () => {
  it('is today when the time is still ahead, tomorrow when it has passed or is now', () => {
    expect(iso(nextDailyTime(new Date('2026-12-05T01:00:00Z'), '03:30'))).toBe('2026-12-05T03:30:00.000Z');
    expect(iso(nextDailyTime(new Date('2026-12-05T03:30:00Z'), '03:30'))).toBe('2026-12-06T03:30:00.000Z');
    expect(iso(nextDailyTime(new Date('2026-12-31T23:00:00Z'), '03:30'))).toBe('2027-01-01T03:30:00.000Z');
  });

  it('follows local time across summer time: 03:30 in July is 02:30 UTC', () => {
    expect(iso(nextDailyTime(new Date('2026-07-01T12:00:00Z'), '03:30'))).toBe('2026-07-02T02:30:00.000Z');
  });

  it('on the day clocks go forward, a time in the skipped hour runs once, an hour later by the clock', () => {
    // 01:30 does not exist on 29 March; the run comes at 02:30 BST (01:30 UTC), the next day at 01:30 BST.
    const first = nextDailyTime(new Date('2026-03-28T12:00:00Z'), '01:30');
    expect(iso(first)).toBe('2026-03-29T01:30:00.000Z');
    expect(iso(nextDailyTime(first, '01:30'))).toBe('2026-03-30T00:30:00.000Z');
  });

  it('on the day clocks go back, a time in the repeated hour runs once, not twice', () => {
    // 01:30 happens at 00:30 UTC (BST) and again at 01:30 UTC (GMT) on 25 October.
    const first = nextDailyTime(new Date('2026-10-24T12:00:00Z'), '01:30');
    expect(iso(first)).toBe('2026-10-25T00:30:00.000Z');
    const second = nextDailyTime(first, '01:30');
    expect(iso(second)).toBe('2026-10-26T01:30:00.000Z');
    // Asked during the repeated hour's second pass, it is still tomorrow.
    expect(iso(nextDailyTime(new Date('2026-10-25T01:15:00Z'), '01:30'))).toBe('2026-10-26T01:30:00.000Z');
  });

  it('runs 24 hours apart on ordinary days and 23 or 25 across the changes', () => {
    const gaps: number[] = [];
    let at = nextDailyTime(new Date('2026-03-27T12:00:00Z'), '03:30');
    for (let i = 0; i < 3; i++) {
      const next = nextDailyTime(at, '03:30');
      gaps.push((next.getTime() - at.getTime()) / 3600_000);
      at = next;
    }
    expect(gaps).toEqual([23, 24, 24]);
    at = nextDailyTime(new Date('2026-10-23T12:00:00Z'), '03:30');
    const autumn = [nextDailyTime(at, '03:30'), nextDailyTime(nextDailyTime(at, '03:30'), '03:30')];
    expect([(autumn[0]!.getTime() - at.getTime()) / 3600_000, (autumn[1]!.getTime() - autumn[0]!.getTime()) / 3600_000]).toEqual([25, 24]);
  });

  it('refuses a time that is not HH:MM, saying what it wants', () => {
    expect(() => parseDailyTime('3:30')).toThrow('the backup time must be HH:MM on a 24-hour clock (like 03:30), not "3:30"');
    expect(() => parseDailyTime('24:00')).toThrow(/HH:MM/);
    expect(parseDailyTime('23:59')).toEqual({ hour: 23, minute: 59 });
  });
});

describe('scheduleDecision', () => {
  const setUp = Date.parse('2026-12-04T12:00:00Z');

  it('first backs up at the next daily time after setup, not at once', () => {
    const d = scheduleDecision({}, '03:30', setUp, Date.parse('2026-12-04T18:00:00Z'));
    expect(d.backupDue).toBe(false);
    expect(iso(d.nextBackupAt)).toBe('2026-12-05T03:30:00.000Z');
  });

  it('a run missed while the box was off is due as soon as it starts again, once', () => {
    const lastRun = Date.parse('2026-12-01T03:30:00Z');
    const d = scheduleDecision({ lastScheduledRunAt: lastRun, lastCheckAt: lastRun }, '03:30', setUp, Date.parse('2026-12-04T09:00:00Z'));
    expect(d.backupDue).toBe(true);
    // After it ran at 09:00, the next is tomorrow's 03:30, not the other missed days.
    const after = scheduleDecision({ lastScheduledRunAt: Date.parse('2026-12-04T09:00:00Z'), lastCheckAt: lastRun }, '03:30', setUp, Date.parse('2026-12-04T09:05:00Z'));
    expect(after.backupDue).toBe(false);
    expect(iso(after.nextBackupAt)).toBe('2026-12-05T03:30:00.000Z');
  });

  it('the integrity check is due weekly (an hour early is fine), and at the first scheduled run', () => {
    const now = Date.parse('2026-12-08T03:30:00Z');
    expect(scheduleDecision({ lastScheduledRunAt: now - 86400_000 }, '03:30', setUp, now).checkDue).toBe(true);
    expect(scheduleDecision({ lastScheduledRunAt: now - 86400_000, lastCheckAt: now - 6 * 86400_000 }, '03:30', setUp, now).checkDue).toBe(false);
    expect(scheduleDecision({ lastScheduledRunAt: now - 86400_000, lastCheckAt: now - 7 * 86400_000 + 1800_000 }, '03:30', setUp, now).checkDue).toBe(true);
  });
});
