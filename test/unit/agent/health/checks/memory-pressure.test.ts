import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  createMemoryCheck,
  evaluateMemory,
  nextOomHistory,
  parseMeminfo,
  parsePressure,
  parseSwaps,
  readMemoryFacts,
  type MemoryFacts,
} from '../../../../../agent/health/checks/memory-pressure.ts';
import type { CheckResult } from '../../../../../agent/health/checks/check.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

/** A recorded or written procfs/sysfs tree. */
const tree = (name: string) => {
  const dir = fileURLToPath(new URL(`../../../../fixtures/health/memory-pressure/${name}/`, import.meta.url));
  return { procDir: `${dir}proc`, sysDir: `${dir}sys` };
};
const byName = (results: CheckResult[], name: string) => results.find((r) => r.check === name);

const GiB = 1024 ** 3;
const NOW = Date.UTC(2026, 11, 5, 12);

describe('reading the memory facts from recorded trees', () => {
  it('reads PSI, meminfo, swaps, zram and oom_kill as recorded on the Debian host (no swap, idle zram0)', async () => {
    const facts = await readMemoryFacts(tree('debian-host'));
    expect(facts).toEqual({
      pressure: { some: { avg10: 0, avg60: 0, avg300: 0, totalMicroseconds: 0 }, full: { avg10: 0, avg60: 0, avg300: 0, totalMicroseconds: 0 } },
      memTotalBytes: 24683748 * 1024,
      memAvailableBytes: 21822792 * 1024,
      swapTotalBytes: 0,
      swapFreeBytes: 0,
      swaps: [],
      zram: [{ device: 'zram0', origDataBytes: 0, memUsedBytes: 0 }],
      oomKills: 0,
    });
  });

  it('reads a Pi 5 swapping to zram', async () => {
    const facts = await readMemoryFacts(tree('pi5-zram-pressure'));
    expect(facts.pressure!.some.avg60).toBe(14.87);
    expect(facts.pressure!.full.totalMicroseconds).toBe(48210937);
    expect(facts.swaps).toEqual([{ filename: '/dev/zram0', sizeBytes: 2073316 * 1024, usedBytes: 1448928 * 1024 }]);
    expect(facts.zram).toEqual([{ device: 'zram0', origDataBytes: 1483702272, memUsedBytes: 421527552 }]);
    expect(facts.oomKills).toBe(2);
  });

  it('reads a kernel without PSI as having no pressure facts', async () => {
    const facts = await readMemoryFacts(tree('no-psi-low-memory'));
    expect(facts.pressure).toBeUndefined();
    expect(facts.zram).toEqual([]);
  });

  it('parses the formats’ corners: no full line (kernels before 5.13), unitless meminfo fields', () => {
    expect(parsePressure('some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n').full.avg60).toBe(0);
    expect(parseMeminfo('MemTotal:  4 kB\nHugePages_Total:       3\n')).toEqual({ MemTotal: 4096, HugePages_Total: 3 });
    expect(parseSwaps('Filename Type Size Used Priority\n/swapfile file 1024 512 -2\n')).toEqual([{ filename: '/swapfile', sizeBytes: 1024 * 1024, usedBytes: 512 * 1024 }]);
  });
});

describe('evaluateMemory, from the recorded trees', () => {
  it('finds the idle host ok, with no swap result (it has no swap)', async () => {
    const results = evaluateMemory(await readMemoryFacts(tree('debian-host')), undefined, { now: NOW });
    expect(results.map((r) => [r.check, r.status])).toEqual([
      ['memory-pressure', 'ok'],
      ['oom-kills', 'ok'],
    ]);
    expect(results[0]!.reason).toBe('Programs waited for memory 0 % of the last minute (all of them at once 0 %); 22 GB of 25 GB memory is available.');
    expect(results[1]!.reason).toBe('No program has been stopped for lack of memory since the box started.');
    expect(results[0]!.metrics.map((m) => m.name)).toEqual([
      'node_memory_MemTotal_bytes',
      'node_memory_MemAvailable_bytes',
      'node_pressure_memory_waiting_seconds_total',
      'node_pressure_memory_stalled_seconds_total',
      'memu_pressure_memory_avg60_ratio',
      'memu_pressure_memory_avg60_ratio',
      'memu_pressure_memory_avg10_ratio',
      'memu_pressure_memory_avg10_ratio',
    ]);
  });

  it('finds a Pi 5 waiting for memory 15 % of the time degraded, and says how full zram is', async () => {
    const results = evaluateMemory(await readMemoryFacts(tree('pi5-zram-pressure')), undefined, { now: NOW });
    expect(byName(results, 'memory-pressure')).toMatchObject({
      status: 'degraded',
      reason: 'Programs waited for memory 15 % of the last minute (all of them at once 3 %); 320 MB of 4.2 GB memory is available. The box is slowed down by a lack of memory.',
      action: 'Stop apps the family does not use, or choose a box with more memory; if this stays, restart the box.',
    });
    const swap = byName(results, 'swap-use')!;
    expect(swap).toMatchObject({ status: 'ok', reason: 'Swap is 70 % used (1.5 GB of 2.1 GB). Compressed swap in memory holds 1.5 GB in 422 MB of memory.' });
    expect(swap.metrics).toContainEqual({ name: 'node_memory_SwapFree_bytes', help: expect.any(String), type: 'gauge', value: 624388 * 1024 });
    expect(swap.metrics).toContainEqual({ name: 'memu_zram_mem_used_bytes', help: expect.any(String), type: 'gauge', labels: { device: 'zram0' }, value: 421527552 });
    // First run after the agent started: two kills since boot, but nothing says they were recent.
    expect(byName(results, 'oom-kills')).toMatchObject({ status: 'ok', reason: 'Programs were stopped for lack of memory 2 times since the box started.' });
  });

  it('finds a thrashing Pi 5 unhealthy and its nearly full swap degraded', async () => {
    const results = evaluateMemory(await readMemoryFacts(tree('pi5-thrashing')), undefined, { now: NOW });
    expect(byName(results, 'memory-pressure')).toMatchObject({
      status: 'unhealthy',
      reason: 'Programs waited for memory 41 % of the last minute (all of them at once 18 %); 101 MB of 4.2 GB memory is available. The box is too short of memory to work properly.',
    });
    expect(byName(results, 'swap-use')).toMatchObject({
      status: 'degraded',
      reason: 'Swap is 97 % used (2.1 GB of 2.1 GB). Compressed swap in memory holds 2.1 GB in 641 MB of memory. When it is full, the next program to need memory is stopped.',
    });
  });

  it('judges by available memory where the kernel has no PSI', async () => {
    // MemAvailable is exactly 5 % of MemTotal: degraded, not yet unhealthy.
    const [r] = evaluateMemory(await readMemoryFacts(tree('no-psi-low-memory')), undefined, { now: NOW });
    expect(r).toMatchObject({ check: 'memory-pressure', status: 'degraded', reason: '212 MB of 4.2 GB memory is available (5 %).' });
  });
});

describe('evaluateMemory thresholds, each on both sides', () => {
  const base: MemoryFacts = { memTotalBytes: 4 * GiB, memAvailableBytes: 2 * GiB, swapTotalBytes: 0, swapFreeBytes: 0, swaps: [], zram: [] };
  const psi = (someAvg60: number, fullAvg60: number): MemoryFacts => ({
    ...base,
    pressure: { some: { avg10: 0, avg60: someAvg60, avg300: 0, totalMicroseconds: 0 }, full: { avg10: 0, avg60: fullAvg60, avg300: 0, totalMicroseconds: 0 } },
  });
  const status = (f: MemoryFacts, check = 'memory-pressure') => byName(evaluateMemory(f, undefined, { now: NOW }), check)?.status;

  it('some avg60: 10 % is degraded, 9.99 % is not', () => {
    expect(status(psi(10, 0))).toBe('degraded');
    expect(status(psi(9.99, 0))).toBe('ok');
  });
  it('full avg60: 10 % is unhealthy, 9.99 % is not', () => {
    expect(status(psi(50, 10))).toBe('unhealthy');
    expect(status(psi(50, 9.99))).toBe('degraded');
  });
  it('judges on avg60, not a 10-second spike', () => {
    const spike = psi(1, 0);
    spike.pressure!.some.avg10 = 80;
    spike.pressure!.full.avg10 = 40;
    expect(status(spike)).toBe('ok');
  });
  it('without PSI: under 10 % available is degraded, under 5 % unhealthy', () => {
    const avail = (share: number) => ({ ...base, memAvailableBytes: share * base.memTotalBytes });
    expect(status(avail(0.101))).toBe('ok');
    expect(status(avail(0.099))).toBe('degraded');
    expect(status(avail(0.051))).toBe('degraded');
    expect(status(avail(0.049))).toBe('unhealthy');
  });
  it('swap: 90 % used is degraded, 89 % is not', () => {
    const swap = (used: number) => ({ ...base, swapTotalBytes: 100 * 1024 ** 2, swapFreeBytes: (100 - used) * 1024 ** 2 });
    expect(status(swap(90), 'swap-use')).toBe('degraded');
    expect(status(swap(89), 'swap-use')).toBe('ok');
  });
});

describe('OOM kills between runs', () => {
  const facts = (oomKills: number): MemoryFacts => ({ memTotalBytes: 4 * GiB, memAvailableBytes: 2 * GiB, swapTotalBytes: 0, swapFreeBytes: 0, swaps: [], zram: [], oomKills });
  const oom = (kills: number, history: Parameters<typeof nextOomHistory>[0], now: number) => byName(evaluateMemory(facts(kills), undefined, { history, now }), 'oom-kills')!;

  it('is degraded after a rise since the previous run, for an hour, then ok again', () => {
    let h = nextOomHistory({}, 2, NOW);
    expect(oom(2, h, NOW).status).toBe('ok');
    h = nextOomHistory(h, 3, NOW + 30_000);
    expect(oom(3, h, NOW + 30_000)).toMatchObject({
      status: 'degraded',
      reason: 'A program was stopped because memory ran out in the last minute (3 times since the box started).',
      action: 'The box restarts stopped apps by itself. If this happens again, stop apps the family does not use or choose a box with more memory.',
      metrics: [{ name: 'node_vmstat_oom_kill', help: expect.any(String), type: 'counter', value: 3 }],
    });
    h = nextOomHistory(h, 3, NOW + 30_000 + 59 * 60_000);
    expect(oom(3, h, NOW + 30_000 + 59 * 60_000)).toMatchObject({ status: 'degraded', reason: 'A program was stopped because memory ran out about 59 minutes ago (3 times since the box started).' });
    h = nextOomHistory(h, 3, NOW + 30_000 + 60 * 60_000);
    expect(oom(3, h, NOW + 30_000 + 60 * 60_000)).toMatchObject({ status: 'ok', reason: 'No program was stopped for lack of memory in the last hour (3 times since the box started).' });
  });

  it('counts several kills in one interval', () => {
    const h = nextOomHistory(nextOomHistory({}, 0, NOW), 4, NOW + 30_000);
    expect(oom(4, h, NOW + 30_000).reason).toBe('4 programs were stopped because memory ran out in the last minute (4 times since the box started).');
  });

  it('keeps the previous count in the check between runs: a rise in /proc/vmstat turns it degraded', async () => {
    const dir = await tempDir('memu-memory-');
    await cp(fileURLToPath(new URL('../../../../fixtures/health/memory-pressure/pi5-zram-pressure/', import.meta.url)), dir, { recursive: true });
    let now = NOW;
    const check = createMemoryCheck({ procDir: join(dir, 'proc'), sysDir: join(dir, 'sys'), now: () => now });
    expect(check.intervalMs).toBe(60_000);
    expect(byName(await check.run(), 'oom-kills')!.status).toBe('ok');
    now += 60_000;
    expect(byName(await check.run(), 'oom-kills')!.status).toBe('ok');
    const vmstat = join(dir, 'proc', 'vmstat');
    await writeFile(vmstat, (await readFile(vmstat, 'utf8')).replace('oom_kill 2', 'oom_kill 3'));
    now += 60_000;
    expect(byName(await check.run(), 'oom-kills')).toMatchObject({ status: 'degraded', reason: 'A program was stopped because memory ran out in the last minute (3 times since the box started).' });
  });
});
