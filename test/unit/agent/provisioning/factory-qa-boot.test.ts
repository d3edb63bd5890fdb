import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { evaluateMemory } from '../../../../agent/factory-qa/checks/memory.ts';
import { evaluateRebootCycles, readRebootRecord } from '../../../../agent/factory-qa/checks/reboot-cycles.ts';
import type { QaStep } from '../../../../agent/factory-qa/qa-steps.ts';
import type { QaThresholds } from '../../../../agent/factory-qa/qa-thresholds.ts';
import { decideFirstBootMode } from '../../../../agent/provisioning/factory-qa-boot.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import { qaFixture } from '../factory-qa/checks/qa-fixtures.ts';
import { bootUnit, CLAIM_CODE, makeQaBench, SHIPPED_DATA, SHIPPED_ROOT, snapshot, STATION_API_KEY, type QaBench } from './qa-boot-device.ts';

const silent = pino({ level: 'silent' });

/** The checks, cut down to one (memory size, from a number): the run, report, signing and FAT are real. */
const memoryCheck = (memTotalKiB: number) => (t: QaThresholds): QaStep[] => [{ name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB }, { ...t, memoryTestMiB: 0 }) }];
const GOOD = { sysDir: join(qaFixture('pi5-nvme-hailo'), 'sys'), steps: memoryCheck(8_245_520) };
const TOO_LITTLE_MEMORY = { sysDir: join(qaFixture('pi5-nvme-hailo'), 'sys'), steps: memoryCheck(1_000_000) };

const fatOf = (bench: QaBench) => ({
  read: (name: string) => readFile(join(bench.fatDevice, name), 'utf8').catch(() => undefined),
  names: () => readdir(bench.fatDevice),
});
const state = (bench: QaBench) => snapshot(bench, fatOf(bench).read, fatOf(bench).names);

/** A unit that was never booted, as the image ships it, plus the kept report: what every finished QA must leave. */
function factoryFresh(bench: QaBench) {
  const withParents = (paths: string[]) => [...new Set(paths.flatMap((p) => p.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'))))].sort();
  return {
    data: withParents([...SHIPPED_DATA, 'factory-qa/memu-qa-report.json', 'factory-qa/memu-qa-report.json.sig']),
    root: withParents([...SHIPPED_ROOT, 'etc/machine-id', 'var/log/journal', 'var/lib/systemd']),
    machineId: '',
    fat: ['memu-preseed.json', 'memu-qa-report.json', 'memu-qa-report.json.sig'],
    preseed: { version: 1, claimCode: CLAIM_CODE, agentApiKey: STATION_API_KEY, hostname: 'family-box' },
    bench,
  };
}

describe('a boot whose preseed says factoryQa: true', () => {
  it('tests the unit instead of the family steps, leaves the report, switches a passed unit off and makes it factory-fresh on the way down', async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-boot-'));
    const boot = await bootUnit(bench, { qa: GOOD });
    // The Pi 5 profile's 20 warm reboots first: 21 boots, the last one tests and switches off.
    expect(boot.state).toEqual({ state: 'done', completed: ['factory-qa-listing', 'factory-qa-api-key', 'factory-qa-reboots', 'factory-qa-run'], ranThisBoot: ['factory-qa-reboots', 'factory-qa-run'] });
    expect(boot).toMatchObject({ boots: 21, reboots: 20, powerOffs: 1, qaRuns: 1, stackRuns: 0 });
    expect(boot.console.at(-1)).toContain('Factory QA passed');
    const { bench: _, ...fresh } = factoryFresh(bench);
    expect(await state(bench)).toEqual(fresh);
    const report = JSON.parse(await readFile(join(bench.fatDevice, 'memu-qa-report.json'), 'utf8'));
    expect(report).toMatchObject({ verdict: 'pass', claimCode: CLAIM_CODE, profile: 'pi5' });
    expect(await readFile(join(bench.dataDir, 'factory-qa/memu-qa-report.json'), 'utf8')).toBe(await readFile(join(bench.fatDevice, 'memu-qa-report.json'), 'utf8'));
  });

  it("reboots as often as the profile says, each boot recorded with its time, and the report's reboot-cycles check reads them", async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-boot-'));
    const rebootCheck = (t: QaThresholds): QaStep[] => [{ name: 'reboot-cycles', timeoutMs: 1000, run: async () => evaluateRebootCycles(await readRebootRecord(bench.dataDir), t) }];
    const boot = await bootUnit(bench, { qa: { sysDir: GOOD.sysDir, steps: rebootCheck } });
    expect(boot).toMatchObject({ boots: 21, reboots: 20, powerOffs: 1, qaRuns: 1 });
    // No boot before the last one ran a check or told the family's steps to start.
    expect(boot.logs.filter((l) => l.includes("rebooting: factory QA's warm reboot")).length).toBe(20);
    expect(boot.logs.join('')).not.toContain('will retry');
    const report = JSON.parse(await readFile(join(bench.fatDevice, 'memu-qa-report.json'), 'utf8')) as { verdict: string; checks: { check: string; verdict: string; measured: unknown; reason: string }[] };
    expect(report.verdict).toBe('pass');
    expect(report.checks.find((c) => c.check === 'reboot-cycles')).toMatchObject({ verdict: 'pass', measured: 20, reason: '20 warm reboots in a row, each back within 120 s (slowest 36 s).' });
    // The record is QA's own: gone once the unit is factory-fresh.
    expect((await state(bench)).data).not.toContain('factory-qa/reboot-cycles.json');
  });

  it('a unit that fails is not cleaned and stays on showing why, without retrying; switched off and on, it is tested again', async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-boot-'));
    const before = await state(bench);
    const failed = await bootUnit(bench, { qa: TOO_LITTLE_MEMORY });
    expect(failed.state).toMatchObject({ state: 'failed', step: 'factory-qa-run', error: 'the unit failed factory QA: memory-size' });
    expect(failed).toMatchObject({ powerOffs: 0, qaRuns: 1, stackRuns: 0 });
    expect(failed.logs.join('')).not.toContain('will retry');
    expect(failed.console.at(-1)).toMatch(/The unit stays on\./);
    const after = await state(bench);
    // Nothing cleaned: the journal, the key, the flag and this boot's machine id are all still there.
    expect(after.data).toEqual(expect.arrayContaining(['agent/provisioning.json', 'factory-qa/shipped-listing.json', 'secrets/agent-api-key.sha256', 'factory-qa/memu-qa-report.json']));
    expect(after.fat).toEqual([...before.fat, 'memu-qa-report.json', 'memu-qa-report.json.sig'].sort());
    expect(after.preseed).toEqual(before.preseed);
    expect(after.machineId).not.toBe('');

    const retest = await bootUnit(bench, { qa: GOOD });
    expect(retest).toMatchObject({ powerOffs: 1, qaRuns: 1, state: { state: 'done' } });
    const { bench: _, ...fresh } = factoryFresh(bench);
    expect(await state(bench)).toEqual(fresh);
  });

  it('without the QA settings on the FAT nothing is tested, the unit stays on and says why', async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-boot-'));
    await writeFile(join(bench.fatDevice, 'memu-qa.json'), '{"version": 1}');
    const boot = await bootUnit(bench, { qa: GOOD });
    expect(boot.state).toMatchObject({ state: 'failed', step: 'factory-qa-run' });
    expect((boot.state as { error: string }).error).toMatch(/^factory QA could not run: memu-qa.json: signingKey/);
    expect(boot).toMatchObject({ powerOffs: 0, qaRuns: 0 });
    expect(boot.console.at(-1)).toContain('Factory QA could not run');
  });

  // Each point as a power cut: the boot stops there (nothing after it is written), the next boot resumes.
  const CUTS = [
    'factory-qa-listing:begin',
    'factory-qa-listing:done',
    'factory-qa-api-key:done',
    'after-data-report',
    'factory-qa-run:done',
    'cleanup:after-data-removals',
    'cleanup:after-root-removals',
    'cleanup:after-fat-removals',
    'cleanup:before-preseed-rewrite',
  ];
  it.each(CUTS)('a power cut at %s: the next boot finishes, the unit ends factory-fresh, tested once after its report was written', async (cutAt) => {
    const bench = await makeQaBench(await tempDir('memu-qa-cut-'));
    const first = await bootUnit(bench, { qa: GOOD, cutAt });
    expect(first.logs.join('')).toContain(`power cut at ${cutAt}`);
    const second = await bootUnit(bench, { qa: GOOD });
    expect(second.state).toMatchObject({ state: 'done' });
    expect(second.powerOffs).toBe(1);
    // Once its passing report is on the data partition, the unit is never tested again.
    const reportWritten = CUTS.indexOf(cutAt) >= CUTS.indexOf('after-data-report');
    expect([first.qaRuns, second.qaRuns]).toEqual(reportWritten ? [1, 0] : [0, 1]);
    const { bench: _, ...fresh } = factoryFresh(bench);
    expect(await state(bench)).toEqual(fresh);
  });
});

describe('a boot without factoryQa', () => {
  it('goes the family way: QA is not requested and nothing of it is written', async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-family-'), { preseed: { version: 1, claimCode: CLAIM_CODE } });
    const ran: string[] = [];
    // The family steps write the device's /etc; the first one is cut off here, before any of them runs.
    const boot = await bootUnit(bench, { qa: GOOD, growSteps: [{ name: 'grow-data-partition', run: async () => void ran.push('grow') }, { name: 'stop-here', run: async () => { throw new Error('the family steps come next'); } }] });
    expect(ran).toEqual(['grow']);
    expect(boot.state).toMatchObject({ state: 'failed', step: 'stop-here' });
    expect(boot.console).toEqual([]);
    expect(await readdir(join(bench.dataDir))).not.toContain('factory-qa');
  });

  it('an agent built without factory QA ignores the flag, as before', async () => {
    const bench = await makeQaBench(await tempDir('memu-qa-family-'));
    const boot = await bootUnit(bench, { qa: GOOD, withoutFactoryQa: true, growSteps: [{ name: 'stop-here', run: async () => { throw new Error('the family steps come next'); } }] });
    expect(boot).toMatchObject({ qaRuns: 0, powerOffs: 0, state: { state: 'failed', step: 'stop-here' } });
  });
});

describe('deciding the kind of boot', () => {
  async function decide(preseed: Record<string, unknown> | undefined, dataState: 'fresh' | 'record' | 'journal' = 'fresh', fat = true) {
    const dir = await tempDir('memu-qa-mode-');
    const fatDir = join(dir, 'fat');
    const dataDir = join(dir, 'data');
    await mkdir(fatDir);
    await mkdir(join(dataDir, 'agent'), { recursive: true });
    if (preseed) await writeFile(join(fatDir, 'memu-preseed.json'), JSON.stringify(preseed));
    if (dataState === 'record') await writeFile(join(dataDir, 'agent/preseed.json'), '{}');
    if (dataState === 'journal') {
      await writeFile(join(dataDir, 'agent/provisioning.json'), JSON.stringify({ format: 'memu-provisioning-journal/1', completed: [{ step: 'read-preseed', at: '2026-12-06T00:00:00Z' }] }));
    }
    return decideFirstBootMode({ dataDir, fatDevice: fat ? fatDir : undefined, log: silent });
  }

  it('factoryQa: true on a fresh unit is a QA boot', async () => {
    expect(await decide({ version: 1, factoryQa: true })).toBe('factory-qa');
  });

  it("no flag, false, no preseed, an invalid preseed or no FAT partition: the family's first boot", async () => {
    expect(await decide({ version: 1, claimCode: CLAIM_CODE })).toBe('family');
    expect(await decide({ version: 1, factoryQa: false })).toBe('family');
    expect(await decide(undefined)).toBe('family');
    expect(await decide({ version: 1, factoryQa: 'yes' })).toBe('family');
    expect(await decide({ version: 1, factoryQa: true }, 'fresh', false)).toBe('family');
  });

  it("a box that began its family first boot never becomes a QA boot, whatever its FAT says (the cleanup would remove the family's data)", async () => {
    expect(await decide({ version: 1, factoryQa: true }, 'record')).toBe('family');
    expect(await decide({ version: 1, factoryQa: true }, 'journal')).toBe('family');
  });
});
