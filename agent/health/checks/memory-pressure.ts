import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type CheckResult, type CheckStatus, type HealthCheck, type Metric } from './check.ts';
import { bytes, count, percent } from './wording.ts';

/** One line of /proc/pressure/memory: the share of time (0–100) tasks waited, and the total in µs. */
export interface PressureLine {
  avg10: number;
  avg60: number;
  avg300: number;
  totalMicroseconds: number;
}

/** `some`: at least one task waited for memory; `full`: every non-idle task did at once. */
export interface MemoryPressure {
  some: PressureLine;
  full: PressureLine;
}

export interface SwapDevice {
  /** As /proc/swaps names it: /dev/zram0, /swapfile. */
  filename: string;
  sizeBytes: number;
  usedBytes: number;
}

/** A zram device's own accounting (/sys/block/zramN/mm_stat). */
export interface ZramUse {
  device: string;
  /** What was swapped into it, uncompressed. */
  origDataBytes: number;
  /** The RAM it takes for that. */
  memUsedBytes: number;
}

export interface MemoryFacts {
  /** Absent when the kernel has no PSI (CONFIG_PSI off, or `psi=0`). */
  pressure?: MemoryPressure;
  memTotalBytes: number;
  memAvailableBytes: number;
  swapTotalBytes: number;
  swapFreeBytes: number;
  swaps: SwapDevice[];
  zram: ZramUse[];
  /** Programs the kernel stopped because memory ran out, since boot (/proc/vmstat oom_kill). */
  oomKills?: number;
}

/** What the check remembers between runs about OOM kills. */
export interface OomHistory {
  /** The count at the previous run; undefined on the first run after the agent started. */
  previousOomKills?: number;
  /** When the check first read the count (epoch ms). */
  watchingSince?: number;
  /** When a rise was last seen (epoch ms), and by how much. */
  lastRiseAt?: number;
  lastRise?: number;
}

export interface MemoryThresholds {
  /** `some` avg60, percent of time: degraded at or above. */
  someAvg60Degraded: number;
  /** `full` avg60, percent of time: unhealthy at or above. */
  fullAvg60Unhealthy: number;
  /** Without PSI: MemAvailable as a share of MemTotal. */
  availableDegradedShare: number;
  availableUnhealthyShare: number;
  /** Share of swap in use: degraded at or above. */
  swapUsedDegradedShare: number;
  /** How long an OOM kill keeps the result degraded, so a parent looking later still sees it. */
  oomHoldMs: number;
}

/**
 * Why these numbers:
 * - PSI on avg60, not avg10: the check runs every 30 s, and avg10 would judge only the
 *   last 10 s of it and flap with every model load Immich does.
 * - some ≥ 10 %: programs waited for memory a tenth of the last minute; the box feels slow.
 * - full ≥ 10 %: everything stalled a tenth of the minute at once, i.e. thrashing; uploads
 *   time out. systemd-oomd's default kill limit (60 % for 30 s) is far beyond this: the
 *   owner should hear of it long before.
 * - Without PSI, MemAvailable under 10 % (earlyoom's default kill threshold) is degraded,
 *   under 5 % unhealthy.
 * - Swap 90 % used: earlyoom acts when swap is under 10 % free; the next spike ends in an
 *   OOM kill.
 * - An OOM kill stays visible for an hour.
 */
export const DEFAULT_MEMORY_THRESHOLDS: MemoryThresholds = {
  someAvg60Degraded: 10,
  fullAvg60Unhealthy: 10,
  availableDegradedShare: 0.1,
  availableUnhealthyShare: 0.05,
  swapUsedDegradedShare: 0.9,
  oomHoldMs: 3600_000,
};

const MEMORY_ACTION = 'Stop apps the family does not use, or choose a box with more memory; if this stays, restart the box.';

function pressureResult(f: MemoryFacts, t: MemoryThresholds): CheckResult {
  const metrics: Metric[] = [
    { name: 'node_memory_MemTotal_bytes', help: 'Memory information field MemTotal_bytes.', type: 'gauge', value: f.memTotalBytes },
    { name: 'node_memory_MemAvailable_bytes', help: 'Memory information field MemAvailable_bytes.', type: 'gauge', value: f.memAvailableBytes },
  ];
  const available = `${bytes(f.memAvailableBytes)} of ${bytes(f.memTotalBytes)} memory is available`;
  const share = f.memTotalBytes > 0 ? f.memAvailableBytes / f.memTotalBytes : 1;
  if (!f.pressure) {
    const status: CheckStatus = share < t.availableUnhealthyShare ? 'unhealthy' : share < t.availableDegradedShare ? 'degraded' : 'ok';
    const reason = `${capitalise(available)} (${percent(share)}).`;
    return status === 'ok' ? { check: 'memory-pressure', status, reason, metrics } : { check: 'memory-pressure', status, reason, action: MEMORY_ACTION, metrics };
  }
  const p = f.pressure;
  metrics.push(
    { name: 'node_pressure_memory_waiting_seconds_total', help: 'Total time in seconds that processes have waited for memory.', type: 'counter', value: p.some.totalMicroseconds / 1e6 },
    { name: 'node_pressure_memory_stalled_seconds_total', help: 'Total time in seconds no process could make progress due to memory congestion.', type: 'counter', value: p.full.totalMicroseconds / 1e6 },
    { name: 'memu_pressure_memory_avg60_ratio', help: 'Share of the last minute tasks waited for memory (PSI avg60).', type: 'gauge', labels: { kind: 'some' }, value: p.some.avg60 / 100 },
    { name: 'memu_pressure_memory_avg60_ratio', help: 'Share of the last minute tasks waited for memory (PSI avg60).', type: 'gauge', labels: { kind: 'full' }, value: p.full.avg60 / 100 },
    { name: 'memu_pressure_memory_avg10_ratio', help: 'Share of the last 10 seconds tasks waited for memory (PSI avg10).', type: 'gauge', labels: { kind: 'some' }, value: p.some.avg10 / 100 },
    { name: 'memu_pressure_memory_avg10_ratio', help: 'Share of the last 10 seconds tasks waited for memory (PSI avg10).', type: 'gauge', labels: { kind: 'full' }, value: p.full.avg10 / 100 },
  );
  const status: CheckStatus = p.full.avg60 >= t.fullAvg60Unhealthy ? 'unhealthy' : p.some.avg60 >= t.someAvg60Degraded ? 'degraded' : 'ok';
  const waited = `Programs waited for memory ${pct(p.some.avg60)} of the last minute (all of them at once ${pct(p.full.avg60)}); ${available}.`;
  if (status === 'ok') return { check: 'memory-pressure', status, reason: waited, metrics };
  const effect = status === 'unhealthy' ? ' The box is too short of memory to work properly.' : ' The box is slowed down by a lack of memory.';
  return { check: 'memory-pressure', status, reason: waited + effect, action: MEMORY_ACTION, metrics };
}

function swapResult(f: MemoryFacts, t: MemoryThresholds): CheckResult | undefined {
  if (f.swapTotalBytes <= 0) return undefined;
  const used = f.swapTotalBytes - f.swapFreeBytes;
  const share = used / f.swapTotalBytes;
  const metrics: Metric[] = [
    { name: 'node_memory_SwapTotal_bytes', help: 'Memory information field SwapTotal_bytes.', type: 'gauge', value: f.swapTotalBytes },
    { name: 'node_memory_SwapFree_bytes', help: 'Memory information field SwapFree_bytes.', type: 'gauge', value: f.swapFreeBytes },
  ];
  let reason = `Swap is ${percent(share)} used (${bytes(used)} of ${bytes(f.swapTotalBytes)}).`;
  const zram = f.zram.filter((z) => z.origDataBytes > 0 || z.memUsedBytes > 0);
  for (const d of f.swaps) {
    metrics.push({ name: 'memu_swap_used_bytes', help: 'Swap in use on one swap device or file.', type: 'gauge', labels: { device: d.filename }, value: d.usedBytes });
  }
  for (const z of f.zram) {
    metrics.push(
      { name: 'memu_zram_orig_data_bytes', help: 'Data swapped into a zram device, uncompressed.', type: 'gauge', labels: { device: z.device }, value: z.origDataBytes },
      { name: 'memu_zram_mem_used_bytes', help: 'Memory a zram device takes, compressed data and overhead.', type: 'gauge', labels: { device: z.device }, value: z.memUsedBytes },
    );
  }
  if (zram.length > 0) {
    const orig = zram.reduce((s, z) => s + z.origDataBytes, 0);
    const mem = zram.reduce((s, z) => s + z.memUsedBytes, 0);
    reason += ` Compressed swap in memory holds ${bytes(orig)} in ${bytes(mem)} of memory.`;
  }
  if (share >= t.swapUsedDegradedShare) {
    return { check: 'swap-use', status: 'degraded', reason: `${reason} When it is full, the next program to need memory is stopped.`, action: MEMORY_ACTION, metrics };
  }
  return { check: 'swap-use', status: 'ok', reason, metrics };
}

function oomResult(kills: number, history: OomHistory, now: number, t: MemoryThresholds): CheckResult {
  const metrics: Metric[] = [{ name: 'node_vmstat_oom_kill', help: '/proc/vmstat information field oom_kill.', type: 'counter', value: kills }];
  const sinceBoot = `${count(kills, 'time')} since the box started`;
  if (history.lastRiseAt !== undefined && now - history.lastRiseAt < t.oomHoldMs) {
    const minutes = Math.round((now - history.lastRiseAt) / 60_000);
    const when = minutes < 1 ? 'in the last minute' : `about ${count(minutes, 'minute')} ago`;
    const who = (history.lastRise ?? 1) === 1 ? 'A program was' : `${history.lastRise} programs were`;
    return {
      check: 'oom-kills',
      status: 'degraded',
      reason: `${who} stopped because memory ran out ${when} (${sinceBoot}).`,
      action: 'The box restarts stopped apps by itself. If this happens again, stop apps the family does not use or choose a box with more memory.',
      metrics,
    };
  }
  let reason: string;
  if (kills === 0) reason = 'No program has been stopped for lack of memory since the box started.';
  // Only a check that has watched for the whole hold period knows the last hour was quiet.
  else if (history.watchingSince !== undefined && now - history.watchingSince >= t.oomHoldMs) reason = `No program was stopped for lack of memory in the last hour (${sinceBoot}).`;
  else reason = `Programs were stopped for lack of memory ${sinceBoot}.`;
  return { check: 'oom-kills', status: 'ok', reason, metrics };
}

/** Judges memory pressure (PSI), swap and zram use, and OOM kills (given what the previous runs saw). */
export function evaluateMemory(
  facts: MemoryFacts,
  thresholds: MemoryThresholds = DEFAULT_MEMORY_THRESHOLDS,
  { history = {}, now = Date.now() }: { history?: OomHistory; now?: number } = {},
): CheckResult[] {
  const results = [pressureResult(facts, thresholds)];
  const swap = swapResult(facts, thresholds);
  if (swap) results.push(swap);
  if (facts.oomKills !== undefined) results.push(oomResult(facts.oomKills, history, now, thresholds));
  return results;
}

/** The OOM history after this run's count: a rise since the previous run is remembered with its time. */
export function nextOomHistory(history: OomHistory, oomKills: number | undefined, now: number): OomHistory {
  if (oomKills === undefined) return history;
  const next: OomHistory = { ...history, previousOomKills: oomKills, watchingSince: history.watchingSince ?? now };
  if (history.previousOomKills !== undefined && oomKills > history.previousOomKills) {
    next.lastRiseAt = now;
    next.lastRise = oomKills - history.previousOomKills;
  }
  return next;
}

function pct(v: number): string {
  return v > 0 && v < 1 ? 'under 1 %' : `${Math.round(v)} %`;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// ---- reading the device ----

export function parsePressure(text: string): MemoryPressure {
  const lines: Partial<MemoryPressure> = {};
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const v = Object.fromEntries(fields.map((f) => f.split('=') as [string, string]));
    lines[kind] = { avg10: Number(v.avg10), avg60: Number(v.avg60), avg300: Number(v.avg300), totalMicroseconds: Number(v.total) };
  }
  if (!lines.some) throw new Error('no "some" line in the memory pressure file');
  // Kernels before 5.13 print no `full` line for the system as a whole.
  return { some: lines.some, full: lines.full ?? { avg10: 0, avg60: 0, avg300: 0, totalMicroseconds: 0 } };
}

/** /proc/meminfo's kB fields, in bytes. */
export function parseMeminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^([\w()]+):\s+(\d+)(?:\s+kB)?/.exec(line);
    if (m) out[m[1]!] = Number(m[2]) * (line.trimEnd().endsWith('kB') ? 1024 : 1);
  }
  return out;
}

/** /proc/swaps: sizes are in KiB. */
export function parseSwaps(text: string): SwapDevice[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 4 && f[0])
    .map((f) => ({ filename: f[0]!, sizeBytes: Number(f[2]) * 1024, usedBytes: Number(f[3]) * 1024 }));
}

/** mm_stat: orig_data_size compr_data_size mem_used_total mem_limit mem_used_max same_pages pages_compacted huge_pages [huge_pages_since], in bytes. */
export function parseZramMmStat(device: string, text: string): ZramUse {
  const f = text.trim().split(/\s+/).map(Number);
  return { device, origDataBytes: f[0] ?? 0, memUsedBytes: f[2] ?? 0 };
}

export function parseVmstatOomKills(text: string): number | undefined {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EOPNOTSUPP: the file exists but PSI was turned off on the kernel command line.
    if (code === 'ENOENT' || code === 'EOPNOTSUPP') return undefined;
    throw err;
  }
}

export interface MemoryReaderOptions {
  procDir?: string;
  sysDir?: string;
}

/** Reads the memory facts from procfs and sysfs (roots injectable for fixture trees). */
export async function readMemoryFacts({ procDir = '/proc', sysDir = '/sys' }: MemoryReaderOptions = {}): Promise<MemoryFacts> {
  const [pressureText, meminfoText, swapsText, vmstatText] = await Promise.all([
    readOptional(join(procDir, 'pressure', 'memory')),
    readFile(join(procDir, 'meminfo'), 'utf8'),
    readOptional(join(procDir, 'swaps')),
    readOptional(join(procDir, 'vmstat')),
  ]);
  const mem = parseMeminfo(meminfoText);
  const blockDir = join(sysDir, 'block');
  const zramNames = (await readdir(blockDir).catch(() => [] as string[])).filter((n) => /^zram\d+$/.test(n)).sort();
  const zram: ZramUse[] = [];
  for (const name of zramNames) {
    const text = await readOptional(join(blockDir, name, 'mm_stat'));
    if (text !== undefined) zram.push(parseZramMmStat(name, text));
  }
  const facts: MemoryFacts = {
    memTotalBytes: mem.MemTotal ?? 0,
    memAvailableBytes: mem.MemAvailable ?? mem.MemFree ?? 0,
    swapTotalBytes: mem.SwapTotal ?? 0,
    swapFreeBytes: mem.SwapFree ?? 0,
    swaps: swapsText ? parseSwaps(swapsText) : [],
    zram,
  };
  if (pressureText !== undefined) facts.pressure = parsePressure(pressureText);
  const oom = vmstatText === undefined ? undefined : parseVmstatOomKills(vmstatText);
  if (oom !== undefined) facts.oomKills = oom;
  return facts;
}

export interface MemoryCheckOptions extends MemoryReaderOptions {
  thresholds?: MemoryThresholds;
  intervalMs?: number;
  now?: () => number;
}

/** Every 60 s: the pressure it judges is the kernel's 60-second average, so reading it more often tells nothing new. */
export function createMemoryCheck(opts: MemoryCheckOptions = {}): HealthCheck {
  const now = opts.now ?? Date.now;
  let history: OomHistory = {};
  return {
    name: 'memory',
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      const facts = await readMemoryFacts(opts);
      const t = now();
      history = nextOomHistory(history, facts.oomKills, t);
      return evaluateMemory(facts, opts.thresholds, { history, now: t });
    },
  };
}
