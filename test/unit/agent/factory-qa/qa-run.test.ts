import { recordBoot } from '../../../../agent/factory-qa/checks/reboot-cycles.ts';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { evaluateMemory } from '../../../../agent/factory-qa/checks/memory.ts';
import { runFactoryQa, type QaRunOptions } from '../../../../agent/factory-qa/qa-run.ts';
import { factoryQaSteps, type QaStep } from '../../../../agent/factory-qa/qa-steps.ts';
import { qaThresholdsFor } from '../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { parseQaReport, verifyQaReport, type TrustedQaKey } from '../../../../shared/contracts/qa-report.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';
import { openFatVolume } from '../../../../shared/fat/fat-volume.ts';
import { readIdentity } from '../../../../agent/factory-qa/checks/identity.ts';
import { qaFixture, recordedRunner, toolOutput } from './checks/qa-fixtures.ts';

const silent = { info: () => {}, warn: () => {} };
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const station: TrustedQaKey[] = [{ publicKey, keyId: keyIdOf(publicKey), claimCode: '7K3M-Q9XD-2HFT-B8RW', source: 'test' }];

let dir: string;
let dataDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-run-'));
  dataDir = join(dir, 'data');
  await mkdir(dataDir);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A clock that moves 10 ms each time it is read, so durations are exact. */
function steppingClock(start = Date.parse('2026-12-05T09:00:00Z')) {
  let t = start;
  return () => (t += 10);
}

function options(steps: QaStep[], extra: Partial<QaRunOptions> = {}): QaRunOptions {
  return {
    profile: 'pi5',
    imageVersion: '0.1.0',
    claimCode: '7K3M-Q9XD-2HFT-B8RW',
    readIdentity: async () => ({ serialNumber: 'a1b2c3d4e5f60718', boardModel: 'Raspberry Pi 5 Model B Rev 1.0', macAddresses: [{ interface: 'eth0', address: '2c:cf:67:01:02:03' }] }),
    boardModelPattern: '^Raspberry Pi 5\\b',
    steps,
    signingKey: privateKey,
    dataDir,
    log: silent,
    now: steppingClock(),
    ...extra,
  };
}

describe('the QA run', () => {
  it('runs every check of a Pi 5 board tree in the fixed order, signs the report and stores it durably', async () => {
    const board = qaFixture('pi5-nvme-hailo');
    const thresholds = qaThresholdsFor(loadProfile('pi5'));
    const run = recordedRunner({
      memtester: { stdout: toolOutput('memtester-4.6-pass.txt') },
      smartctl: { stdout: toolOutput('smartctl-7.4-new-drive.json') },
      fio: { stdout: toolOutput('fio-3.33-pi5-nvme.json') },
      stress: {},
      ip: {},
      iw: { stdout: toolOutput('iw-6.9-scan-two-networks.txt') },
    });
    // The QA boot's 20 warm reboots, as it records them before the run.
    for (let boot = 0; boot <= 20; boot++) await recordBoot(dataDir, { bootId: `boot-${boot}`, upSeconds: 28 }, 20);
    const steps = factoryQaSteps({
      profile: loadProfile('pi5'),
      thresholds,
      sysDir: join(board, 'sys'),
      procDir: join(board, 'proc'),
      devDir: join(board, 'dev'),
      dataDir,
      run,
      imageHasNpuDriver: true,
      fioSizeMiB: 1,
      thermalSampleMs: 5,
      piBootloader: async () => ({ builtAt: Date.UTC(2025, 10, 5) / 1000, bootMode: 6, bootOrder: '0xf416' }),
    });
    const result = await runFactoryQa(options(steps, { readIdentity: () => readIdentity(join(board, 'sys')) }));
    expect(result.report.checks.map((c) => `${c.check}:${c.verdict}`)).toEqual([
      'serial-number:pass',
      'board-model:pass',
      'mac-addresses:pass',
      'claim-code:pass',
      'cpu-cores:pass',
      'cpu-model:pass',
      'memory-size:pass',
      'memory-test:pass',
      'nvme-present:pass',
      'nvme-pcie-link:pass',
      'nvme-smart:pass',
      'disk-write-speed:pass',
      'disk-read-speed:pass',
      'temperature-idle:pass',
      'temperature-load:pass',
      'throttling:pass',
      'npu:pass',
      'ethernet-link:pass',
      'wifi-scan:pass',
      'watchdog:pass',
      'reboot-cycles:pass',
      'pi-bootloader:pass',
    ]);
    expect(result.report).toMatchObject({ verdict: 'pass', failingChecks: [], serialNumber: 'a1b2c3d4e5f60718', claimCode: '7K3M-Q9XD-2HFT-B8RW', profile: 'pi5' });
    expect(run.calls.map((c) => c[0])).toEqual(['memtester', 'smartctl', 'fio', 'stress', 'ip', 'iw']);

    // Stored durably on the data partition, and the station's key verifies it.
    const stored = await readFile(result.reportPath);
    const signature = await readFile(`${result.reportPath}.sig`, 'utf8');
    expect(verifyQaReport(stored, signature, station)).toMatchObject({ ok: true, report: result.report });
    expect(await readdir(join(dataDir, 'factory-qa'))).toEqual(['memu-qa-report.json', 'memu-qa-report.json.sig', 'reboot-cycles.json']);
  });

  it('a unit with too little memory and no NVMe fails, naming the checks; the station still verifies it', async () => {
    const board = qaFixture('qemu-amd64');
    const thresholds = qaThresholdsFor(loadProfile('pi5'));
    const steps = factoryQaSteps({ profile: loadProfile('pi5'), thresholds: { ...thresholds, memoryTestMiB: 0 }, sysDir: join(board, 'sys'), procDir: join(board, 'proc'), devDir: join(board, 'dev'), dataDir, run: recordedRunner({}) }).filter((s) =>
      ['memory', 'nvme'].includes(s.name),
    );
    const result = await runFactoryQa(options(steps));
    expect(result.report.verdict).toBe('fail');
    expect(result.report.failingChecks).toEqual(['memory-size', 'nvme-present']);
    expect(verifyQaReport(await readFile(result.reportPath), await readFile(`${result.reportPath}.sig`, 'utf8'), station).ok).toBe(true);
  });

  it('a step that hangs fails its check at its timeout and the run goes on; one that throws fails with its message', async () => {
    const hang: QaStep = { name: 'disk-speed', timeoutMs: 50, run: () => new Promise(() => {}) };
    const broken: QaStep = { name: 'thermal', timeoutMs: 1000, run: async () => Promise.reject(new Error('EIO reading thermal_zone0')) };
    const fine: QaStep = { name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB: 8_245_520 }, { minMemoryMiB: 7500, memoryTestMiB: 0 }) };
    const seen: (string | undefined)[] = [];
    const result = await runFactoryQa(options([hang, broken, fine], { now: Date.now, onProgress: (_done, next) => seen.push(next) }));
    const byName = Object.fromEntries(result.report.checks.map((c) => [c.check, c]));
    expect(byName['disk-speed']).toMatchObject({ verdict: 'fail', reason: 'The disk-speed check did not finish within 50 ms.' });
    expect(byName['disk-speed']!.durationMs).toBeGreaterThanOrEqual(45);
    expect(byName.thermal).toMatchObject({ verdict: 'fail', reason: 'The thermal check broke: EIO reading thermal_zone0' });
    expect(byName['memory-size']!.verdict).toBe('pass');
    expect(result.report.failingChecks).toEqual(['disk-speed', 'thermal']);
    expect(seen).toEqual(['disk-speed', 'thermal', 'memory', undefined]);
  });

  it('refuses to sign a report the station would refuse (two steps naming one check)', async () => {
    const step: QaStep = { name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB: 8_245_520 }, { minMemoryMiB: 7500, memoryTestMiB: 0 }) };
    await expect(runFactoryQa(options([step, step]))).rejects.toThrow('the QA report is invalid: checks: check memory-size appears more than once');
    expect(await readdir(dataDir)).toEqual([]);
  });

  it('a preseed without a claim code fails the unit: it could not be labelled', async () => {
    const result = await runFactoryQa(options([], { claimCode: undefined }));
    expect(result.report).toMatchObject({ verdict: 'fail', failingChecks: ['claim-code'] });
    expect(result.report.claimCode).toBeUndefined();
  });

  it('each check carries the time its step took', async () => {
    const step: QaStep = { name: 'memory', timeoutMs: 1000, run: async () => evaluateMemory({ memTotalKiB: 8_245_520 }, { minMemoryMiB: 7500, memoryTestMiB: 0 }) };
    const result = await runFactoryQa(options([step]));
    // The stepping clock moves 10 ms per read; each step reads it three times.
    expect(result.report.checks.map((c) => c.durationMs)).toEqual([20, 20, 20, 20, 20, 20]);
    expect(result.report.startedAt).toBe('2026-12-05T09:00:00.010Z');
    expect(parseQaReport(await readFile(result.reportPath, 'utf8')).ok).toBe(true);
  });

  it('leaves the signed report on the FAT partition when the station asks', async () => {
    const fatDir = join(dir, 'fat');
    await mkdir(fatDir);
    const result = await runFactoryQa(options([], { fat: await openFatVolume(fatDir) }));
    expect((await readdir(fatDir)).sort()).toEqual(['memu-qa-report.json', 'memu-qa-report.json.sig']);
    const bytes = await readFile(join(fatDir, 'memu-qa-report.json'));
    expect(verifyQaReport(bytes, await readFile(join(fatDir, 'memu-qa-report.json.sig'), 'utf8'), station)).toMatchObject({ ok: true, report: result.report });
    expect(result.fatProblem).toBeUndefined();
  });

  it('a FAT that cannot be written is reported; the report is on the data partition all the same', async () => {
    const fat = { description: 'test', listRoot: async () => [], readFile: async () => Buffer.alloc(0), removeFile: async () => {}, writeFileAtomic: async () => Promise.reject(new Error('the FAT file system is full')) };
    const result = await runFactoryQa(options([], { fat }));
    expect(result.fatProblem).toBe('the FAT file system is full');
    expect(await readdir(join(dataDir, 'factory-qa'))).toHaveLength(2);
  });
});
