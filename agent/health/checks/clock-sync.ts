import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommandOutcome, type CommandOutcome } from '../../../shared/process/run-command.ts';
import type { CheckResult, HealthCheck, Metric } from './check.ts';
import { day } from './wording.ts';

export interface ClockFacts {
  /** The wall clock, epoch ms. */
  now: number;
  /** Seconds since boot (/proc/uptime). */
  uptimeSeconds: number;
  /** When systemd-timesyncd last synchronised (the mtime of /run/systemd/timesync/synchronized, touched on each success); absent before the first. */
  lastSyncAt?: number;
  /** The kernel's view through `timedatectl show -p NTPSynchronized`; asked only when timesyncd's file says nothing recent. */
  ntpSynchronized?: boolean;
  /** The earliest plausible time, epoch seconds: when this system was built (SOURCE_DATE_EPOCH). */
  notBefore?: number;
}

export interface ClockThresholds {
  /**
   * A sync older than this is not trusted on its own. timesyncd polls at most every 2048 s
   * and touches the file on each success, so 6 hours is about ten missed polls.
   */
  syncStaleMs: number;
  /** After boot, how long an unsynchronised clock is expected (network and DNS coming up) before it is a problem. */
  bootGraceMs: number;
}

/** See ClockThresholds for why. */
export const DEFAULT_CLOCK_THRESHOLDS: ClockThresholds = { syncStaleMs: 6 * 3600_000, bootGraceMs: 10 * 60_000 };

const WHY = 'secure connections and remote access (Tailscale) need the right time';

/** Judges whether the clock is synchronised and plausible. */
export function evaluateClock(facts: ClockFacts, thresholds: ClockThresholds = DEFAULT_CLOCK_THRESHOLDS): CheckResult[] {
  const fresh = facts.lastSyncAt !== undefined && facts.now - facts.lastSyncAt < thresholds.syncStaleMs;
  const synced = fresh || facts.ntpSynchronized === true;
  const metrics: Metric[] = [
    { name: 'node_timex_sync_status', help: 'Is clock synchronized to a reliable server (1 = yes, 0 = no).', type: 'gauge', value: synced ? 1 : 0 },
    { name: 'node_time_seconds', help: 'System time in seconds since epoch (1970).', type: 'gauge', value: facts.now / 1000 },
  ];
  if (facts.lastSyncAt !== undefined) {
    metrics.push({ name: 'memu_timesync_last_sync_timestamp_seconds', help: 'When systemd-timesyncd last synchronised the clock.', type: 'gauge', value: Math.floor(facts.lastSyncAt / 1000) });
  }

  if (facts.notBefore !== undefined && facts.now < facts.notBefore * 1000) {
    return [
      {
        check: 'clock-sync',
        status: 'unhealthy',
        reason: `The clock says ${day(facts.now)}, before this system was made (${day(facts.notBefore * 1000)}); ${WHY}.`,
        action: "Connect the box to the internet: it sets its clock as soon as it can reach a time server.",
        metrics,
      },
    ];
  }
  if (synced) return [{ check: 'clock-sync', status: 'ok', reason: 'The clock is set from the internet.', metrics }];

  const uptimeMs = facts.uptimeSeconds * 1000;
  if (facts.lastSyncAt === undefined && uptimeMs < thresholds.bootGraceMs) {
    return [{ check: 'clock-sync', status: 'ok', reason: `The clock has not been set from the internet yet; the box started ${ago(uptimeMs)} ago.`, metrics }];
  }
  const reason =
    facts.lastSyncAt === undefined
      ? `The clock has not been set from the internet since the box started ${ago(uptimeMs)} ago; ${WHY}.`
      : `The clock was last set from the internet ${ago(facts.now - facts.lastSyncAt)} ago; ${WHY}.`;
  return [
    {
      check: 'clock-sync',
      status: 'degraded',
      reason,
      action: "Check the box's network cable or Wi-Fi: it sets its clock as soon as it reaches the internet.",
      metrics,
    },
  ];
}

/** 95 000 ms → "2 minutes"; the largest whole unit. */
function ago(ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const [n, unit] = minutes >= 2 * 1440 ? [Math.floor(minutes / 1440), 'day'] : minutes >= 120 ? [Math.floor(minutes / 60), 'hour'] : [minutes, 'minute'];
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

// ---- reading the device ----

export type CommandRunner = (cmd: string, args: readonly string[]) => Promise<CommandOutcome>;

/** `timedatectl show -p NTPSynchronized --value`: undefined when timedated cannot answer (no systemd, no D-Bus). */
export async function askNtpSynchronized(run: CommandRunner = runCommandOutcome): Promise<boolean | undefined> {
  const r = await run('timedatectl', ['show', '-p', 'NTPSynchronized', '--value']);
  if (r.code !== 0) return undefined;
  const v = r.stdout.trim();
  return v === 'yes' ? true : v === 'no' ? false : undefined;
}

export interface ClockReaderOptions {
  procDir?: string;
  /** Where systemd-timesyncd keeps /run/systemd/timesync. */
  runDir?: string;
  notBefore?: number;
  run?: CommandRunner;
  now?: () => number;
  thresholds?: ClockThresholds;
}

/**
 * Reads timesyncd's file and the uptime; asks timedated (a D-Bus round trip, and starting
 * the service if it sleeps) only when the file is missing or stale, i.e. rarely on a
 * connected box and to confirm an unsynchronised clock (or another NTP client) otherwise.
 */
export async function readClockFacts({ procDir = '/proc', runDir = '/run', notBefore, run, now = Date.now, thresholds = DEFAULT_CLOCK_THRESHOLDS }: ClockReaderOptions = {}): Promise<ClockFacts> {
  const [uptimeText, synced] = await Promise.all([readFile(join(procDir, 'uptime'), 'utf8'), stat(join(runDir, 'systemd', 'timesync', 'synchronized')).catch(() => undefined)]);
  const facts: ClockFacts = { now: now(), uptimeSeconds: Number(uptimeText.split(' ')[0]) || 0 };
  if (synced) facts.lastSyncAt = synced.mtimeMs;
  if (notBefore !== undefined) facts.notBefore = notBefore;
  if (facts.lastSyncAt === undefined || facts.now - facts.lastSyncAt >= thresholds.syncStaleMs) {
    const ntp = await askNtpSynchronized(run);
    if (ntp !== undefined) facts.ntpSynchronized = ntp;
  }
  return facts;
}

export interface ClockCheckOptions extends ClockReaderOptions {
  intervalMs?: number;
  /** How long timedated's answer is reused (default 15 minutes). */
  askTimedatedEveryMs?: number;
}

/**
 * Every 5 minutes: the clock drifts slowly. timedated's answer, asked only while timesyncd's
 * file says nothing fresh (a box offline, or with another NTP client), is reused for 15
 * minutes: each call forks a process from the agent, the costliest thing a round does under
 * emulation, and an offline box would otherwise pay it every run.
 */
export function createClockCheck(opts: ClockCheckOptions = {}): HealthCheck {
  const now = opts.now ?? Date.now;
  const reuseFor = opts.askTimedatedEveryMs ?? 15 * 60_000;
  let asked: { at: number; outcome: Promise<CommandOutcome> } | undefined;
  const run: CommandRunner = (cmd, args) => {
    if (!asked || now() - asked.at >= reuseFor) asked = { at: now(), outcome: (opts.run ?? runCommandOutcome)(cmd, args) };
    return asked.outcome;
  };
  return {
    name: 'clock-sync',
    intervalMs: opts.intervalMs ?? 5 * 60_000,
    async run() {
      return evaluateClock(await readClockFacts({ ...opts, run }), opts.thresholds);
    },
  };
}
