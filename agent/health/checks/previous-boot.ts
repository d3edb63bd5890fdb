import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readJsonIfPresent, writeJsonDurably } from '../../../shared/files/durable-files.ts';
import type { CheckResult, CheckStatus, HealthCheck, Metric } from './check.ts';

/**
 * How the previous boot ended, and how often boots have ended badly lately. The kernel
 * forgets everything at a reset, so the agent keeps a small record on the data partition
 * (`<dataDir>/agent/boot-record.json`): each boot's id and start, and a mark written when
 * the agent is stopped for a system shutdown. At the next start a boot without the mark
 * ended uncleanly, and the evidence left behind says how: the hardware watchdog's
 * "card reset" boot status, or a kernel crash record in pstore; with neither, the power
 * went or the box froze with no watchdog to reset it.
 */

export type BootEnding = 'clean' | 'kernel-panic' | 'watchdog-reset' | 'power-loss-or-hang';

export interface PreviousBoot {
  current: { bootId: string; startedAt: string };
  /** How the boot before this one ended; absent on the first start the agent records. */
  previous?: { bootId: string; startedAt: string; ending: BootEnding; evidence: string; detectedAt: string };
  /** Every recorded boot that ended uncleanly, with when that was found (the next boot's start). */
  uncleanEndings: { ending: Exclude<BootEnding, 'clean'>; detectedAt: string }[];
}

/**
 * A crash or a watchdog reset is worth a look for a day. A single power cut is not: it
 * happens in every home (and whenever the box is unplugged), so it is said but leaves
 * the box ok. Three unclean ends of any kind in a week is a pattern — a failing supply,
 * overheating, a kernel that keeps crashing — and data is at risk each time.
 */
export const DEFAULT_PREVIOUS_BOOT_THRESHOLDS = {
  degradedForMs: 24 * 60 * 60_000,
  windowMs: 7 * 24 * 60 * 60_000,
  unhealthyUncleanCount: 3,
};

export type PreviousBootThresholds = typeof DEFAULT_PREVIOUS_BOOT_THRESHOLDS;

const ENDING_WORDS: Record<Exclude<BootEnding, 'clean'>, string> = {
  'kernel-panic': 'the system crashed with a kernel panic',
  'watchdog-reset': 'it froze and its hardware watchdog restarted it',
  'power-loss-or-hang': 'it lost power, or froze, without shutting down properly',
};

const ENDING_ACTION: Record<Exclude<BootEnding, 'clean'>, string> = {
  'kernel-panic': 'Nothing to do if it does not happen again; if it does, update the box and tell support.',
  'watchdog-reset': 'Nothing to do if it does not happen again; if it does, check that the box is not too hot and tell support.',
  'power-loss-or-hang': 'Nothing to do if the power was cut or the box was unplugged; otherwise check the power supply and its cable, and shut the box down from the dashboard before unplugging it.',
};

/** A crash or a watchdog reset is worth a day's attention; a power cut alone is not. */
const degradesForADay = (ending: BootEnding) => ending === 'kernel-panic' || ending === 'watchdog-reset';

const PATTERN_ACTION =
  'Check the power supply and its cable (use the official one), make sure the box is not too hot, and tell support if it keeps happening: every unclean stop risks the data being written.';

export function evaluatePreviousBoot(boot: PreviousBoot, now: Date, thresholds: PreviousBootThresholds = DEFAULT_PREVIOUS_BOOT_THRESHOLDS): CheckResult[] {
  const at = now.getTime();
  const recent = boot.uncleanEndings.filter((e) => at - Date.parse(e.detectedAt) < thresholds.windowMs);
  const days = Math.round(thresholds.windowMs / 86_400_000);
  const metrics: Metric[] = [
    { name: 'memu_unclean_boots', help: `Boots that ended without a clean shutdown in the last ${days} days`, type: 'gauge', labels: { window: `${days}d` }, value: recent.length },
    ...(['clean', 'kernel-panic', 'watchdog-reset', 'power-loss-or-hang'] as const).map(
      (ending): Metric => ({
        name: 'memu_previous_boot_ending',
        help: 'How the previous boot ended (1 for the way it did)',
        type: 'gauge',
        labels: { ending: ending.replace(/-/g, '_') },
        value: boot.previous?.ending === ending ? 1 : 0,
      }),
    ),
  ];
  const prev = boot.previous;
  if (!prev) return [{ check: 'previous-boot', status: 'ok', reason: 'This is the first start the box has recorded, so there is no previous boot to judge.', metrics }];

  const count = `${recent.length} ${recent.length === 1 ? 'time' : 'times'} in the last ${days} days`;
  if (recent.length >= thresholds.unhealthyUncleanCount) {
    const last = recent.reduce((a, b) => (Date.parse(b.detectedAt) > Date.parse(a.detectedAt) ? b : a));
    return [
      {
        check: 'previous-boot',
        status: 'unhealthy',
        reason: `The box stopped without shutting down properly ${count}; the latest, found ${ago(at - Date.parse(last.detectedAt))}: ${ENDING_WORDS[last.ending]}.`,
        action: PATTERN_ACTION,
        metrics,
      },
    ];
  }
  // A crash or watchdog reset is worth a day's attention even when a clean restart followed it.
  const latest = recent.reduce<(typeof recent)[number] | undefined>((a, b) => (!a || Date.parse(b.detectedAt) > Date.parse(a.detectedAt) ? b : a), undefined);
  if (prev.ending === 'clean' && latest && degradesForADay(latest.ending) && at - Date.parse(latest.detectedAt) < thresholds.degradedForMs) {
    return [
      {
        check: 'previous-boot',
        status: 'degraded',
        reason: `The box last shut down cleanly, but ${ago(at - Date.parse(latest.detectedAt))} it had to start again after ${ENDING_WORDS[latest.ending]}. It stopped uncleanly ${count}.`,
        action: ENDING_ACTION[latest.ending],
        metrics,
      },
    ];
  }
  if (prev.ending !== 'clean') {
    const since = at - Date.parse(prev.detectedAt);
    const status: CheckStatus = since < thresholds.degradedForMs && degradesForADay(prev.ending) ? 'degraded' : 'ok';
    return [
      {
        check: 'previous-boot',
        status,
        reason: `The box started again ${ago(since)} after ${ENDING_WORDS[prev.ending]} (${prev.evidence}). It stopped uncleanly ${count}.`,
        ...(status === 'ok' && degradesForADay(prev.ending) ? {} : { action: ENDING_ACTION[prev.ending] }),
        metrics,
      },
    ];
  }
  const history = recent.length === 0 ? `no unclean stops in the last ${days} days` : `it stopped uncleanly ${count}`;
  return [{ check: 'previous-boot', status: 'ok', reason: `The box last shut down cleanly; ${history}.`, metrics }];
}

function ago(ms: number): string {
  const minutes = Math.max(0, Math.round(ms / 60_000));
  if (minutes < 1) return 'less than a minute ago';
  if (minutes < 60) return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} ${hours === 1 ? 'hour' : 'hours'} ago`;
  return `${Math.round(hours / 24)} days ago`;
}

/** watchdog(4)'s WDIOF_CARDRESET: the watchdog caused the last reboot. */
export const WDIOF_CARDRESET = 0x20;

/**
 * Whether a watchdog's boot status says it reset the machine. The watchdog core shows
 * `bootstatus` in decimal; drivers set it at probe from the hardware (i6300esb: the
 * reload register's timeout bit, which QEMU keeps across the reset it causes).
 */
export async function readWatchdogReset(sysDir: string): Promise<string | undefined> {
  const dir = join(sysDir, 'class/watchdog');
  for (const name of (await readdir(dir).catch(() => [] as string[])).filter((n) => /^watchdog\d+$/.test(n)).sort()) {
    const text = (await readFile(join(dir, name, 'bootstatus'), 'utf8').catch(() => ''))?.trim();
    const status = /^0x[0-9a-f]+$/i.test(text) ? Number.parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : 0;
    if (status & WDIOF_CARDRESET) return name;
  }
  return undefined;
}

/**
 * Kernel crash records: `dmesg-*` files in the pstore filesystem, or what
 * systemd-pstore moved out of it into /var/lib/systemd/pstore (one directory per crash).
 * Names only; which are new is decided against the names the last start saw.
 */
export async function listPstoreRecords(dirs: readonly string[]): Promise<string[]> {
  const names: string[] = [];
  for (const dir of dirs) {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (entry.isDirectory() || entry.name.startsWith('dmesg')) names.push(join(dir, entry.name));
    }
  }
  return names.sort();
}

interface BootEntry {
  bootId: string;
  startedAt: string;
  cleanShutdownAt?: string;
  ending?: BootEnding;
  evidence?: string;
  detectedAt?: string;
}

interface BootRecordFile {
  version: 1;
  boots: BootEntry[];
  /** The crash records present at the last start, so a new one can be told apart. */
  pstoreSeen: string[];
}

/** Boots older than this are dropped from the record; the window is a week, the rest is context for support. */
const KEEP_MS = 30 * 24 * 60 * 60_000;

export interface BootRecordOptions {
  /** The data partition's mount point (`/var/lib/memu`). */
  dataDir: string;
  procDir?: string;
  sysDir?: string;
  pstoreDirs?: readonly string[];
  now?: () => Date;
  log?: Pick<Logger, 'warn'>;
}

export interface BootRecord {
  /** Reads the record, judges the previous boot, adds this one. Runs once; later calls give the same answer. */
  start(): Promise<PreviousBoot>;
  /** Marks this boot as ending cleanly: call when systemd stops the agent for a system shutdown. */
  markCleanShutdown(): Promise<void>;
}

export function createBootRecord(opts: BootRecordOptions): BootRecord {
  const path = join(opts.dataDir, 'agent', 'boot-record.json');
  const sysDir = opts.sysDir ?? '/sys';
  const procDir = opts.procDir ?? '/proc';
  const pstoreDirs = opts.pstoreDirs ?? [join(sysDir, 'fs/pstore'), '/var/lib/systemd/pstore'];
  const now = opts.now ?? (() => new Date());
  let record: BootRecordFile | undefined;
  let started: Promise<PreviousBoot> | undefined;

  const load = async (): Promise<BootRecordFile> => {
    try {
      const data = (await readJsonIfPresent(path)) as Partial<BootRecordFile> | undefined;
      if (data && Array.isArray(data.boots)) return { version: 1, boots: data.boots, pstoreSeen: Array.isArray(data.pstoreSeen) ? data.pstoreSeen : [] };
    } catch (err) {
      // A damaged record must not stop the agent; the history starts again.
      opts.log?.warn({ err, path }, 'the boot record cannot be read; starting a new one');
    }
    return { version: 1, boots: [], pstoreSeen: [] };
  };

  const doStart = async (): Promise<PreviousBoot> => {
    const file = await load();
    const bootId = (await readFile(join(procDir, 'sys/kernel/random/boot_id'), 'utf8')).trim();
    const at = now();
    const pstore = await listPstoreRecords(pstoreDirs);
    const last = file.boots.at(-1);
    if (last?.bootId === bootId) {
      // The agent restarted within this boot: the boot goes on, whatever a stop marked.
      delete last.cleanShutdownAt;
    } else {
      if (last && !last.ending) {
        const judged = await judgeEnding(last, file.pstoreSeen, pstore);
        Object.assign(last, judged, { detectedAt: at.toISOString() });
      }
      file.boots.push({ bootId, startedAt: at.toISOString() });
    }
    file.pstoreSeen = pstore;
    file.boots = file.boots.filter((b, i) => i === file.boots.length - 1 || at.getTime() - Date.parse(b.startedAt) < KEEP_MS);
    await writeJsonDurably(path, file);
    record = file;
    return summarise(file);
  };

  const judgeEnding = async (boot: BootEntry, pstoreSeen: readonly string[], pstore: readonly string[]): Promise<{ ending: BootEnding; evidence: string }> => {
    if (boot.cleanShutdownAt) return { ending: 'clean', evidence: 'the agent was stopped for a system shutdown' };
    const crashes = pstore.filter((p) => !pstoreSeen.includes(p));
    const watchdog = await readWatchdogReset(sysDir);
    // A crash record names the cause; the watchdog only says the machine stopped answering
    // (after a panic with no reboot set, it is what brought the box back: both are said).
    if (crashes.length > 0) {
      const reset = watchdog ? `; ${watchdog} then reset the machine` : '';
      return { ending: 'kernel-panic', evidence: `a kernel crash record was left in ${crashes[0]}${reset}` };
    }
    if (watchdog) return { ending: 'watchdog-reset', evidence: `${watchdog} reports that it reset the machine` };
    return { ending: 'power-loss-or-hang', evidence: 'no shutdown was recorded and no crash or watchdog reset was reported' };
  };

  return {
    start() {
      // A failed start (the data partition not yet writable) is tried again by the next caller.
      started ??= doStart().catch((err: unknown) => {
        started = undefined;
        throw err;
      });
      return started;
    },
    async markCleanShutdown() {
      await this.start();
      const current = record?.boots.at(-1);
      if (!record || !current) return;
      current.cleanShutdownAt = now().toISOString();
      await writeJsonDurably(path, record);
    },
  };
}

function summarise(file: BootRecordFile): PreviousBoot {
  const current = file.boots.at(-1)!;
  const prev = file.boots.at(-2);
  return {
    current: { bootId: current.bootId, startedAt: current.startedAt },
    ...(prev?.ending
      ? { previous: { bootId: prev.bootId, startedAt: prev.startedAt, ending: prev.ending, evidence: prev.evidence ?? '', detectedAt: prev.detectedAt ?? current.startedAt } }
      : {}),
    uncleanEndings: file.boots.flatMap((b) =>
      b.ending && b.ending !== 'clean' ? [{ ending: b.ending, detectedAt: b.detectedAt ?? b.startedAt }] : [],
    ),
  };
}

export interface PreviousBootCheckOptions {
  bootRecord: BootRecord;
  now?: () => Date;
  intervalMs?: number;
}

/** Judges the record every 10 minutes: the facts are fixed for the boot, but "degraded for a day" and the week's window move with the clock. */
export function createPreviousBootCheck(opts: PreviousBootCheckOptions): HealthCheck {
  const now = opts.now ?? (() => new Date());
  return {
    name: 'previous-boot',
    intervalMs: opts.intervalMs ?? 10 * 60_000,
    async run() {
      return evaluatePreviousBoot(await opts.bootRecord.start(), now());
    },
  };
}
