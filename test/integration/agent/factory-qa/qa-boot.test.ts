/**
 * A QA boot through the agent's real provisioning and factory QA modules, on a real GPT
 * disk image whose FAT partition is made by mkfs.vfat and written and read with mtools (as
 * the station and the device do), with the real checks reading a Raspberry Pi 5's /sys,
 * /proc and /dev tree (test/fixtures/factory-qa/pi5-nvme-hailo) and the agent's HTTP server
 * answering GET /api/factory-qa. The tools the checks run (memtester, smartctl, fio,
 * stress, iw) are not installed on the CI machines: a fake answers each with its
 * recorded output (test/fixtures/factory-qa/tools). The data partition's checks and growth need root and
 * a mounted partition, and are left to the end-to-end boot.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FactoryQaState } from '../../../../agent/factory-qa/index.ts';
import { verifyQaReport } from '../../../../shared/contracts/qa-report.ts';
import { listFatRoot, makeGptDisk, putFatFile, readFatFile } from '../../../helpers/fat-disk.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import { qaFixture, recordedRunner, toolOutput, type RecordedRun } from '../../../unit/agent/factory-qa/checks/qa-fixtures.ts';
import { bootUnit, CLAIM_CODE, makeQaBench, snapshot, STATION_API_KEY } from '../../../unit/agent/provisioning/qa-boot-device.ts';

const board = qaFixture('pi5-nvme-hailo');
const toolsOf = (memtester: RecordedRun) =>
  recordedRunner({
    memtester,
    smartctl: { stdout: toolOutput('smartctl-7.4-new-drive.json') },
    fio: { stdout: toolOutput('fio-3.33-pi5-nvme.json') },
    stress: {},
    ip: {},
    iw: { stdout: toolOutput('iw-6.9-scan-two-networks.txt') },
  });

async function benchOnFatImage() {
  const dir = await tempDir('memu-qa-bench-');
  const disk = await makeGptDisk(dir);
  const fatOffset = disk.offsets[0]!;
  const bench = await makeQaBench(dir, { fatDevice: disk.path });
  for (const [name, text] of Object.entries(bench.qaFiles)) await putFatFile(disk.path, fatOffset, name, text);
  const fat = {
    read: (name: string) => readFatFile(disk.path, fatOffset, name).catch(() => undefined),
    names: () => listFatRoot(disk.path, fatOffset),
  };
  return { bench, fat, state: () => snapshot(bench, fat.read, fat.names) };
}

async function getJson(url: string, key?: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, key ? { headers: { authorization: `Bearer ${key}` } } : {});
  return { status: response.status, body: await response.json() };
}

const piBoard = { sysDir: join(board, 'sys'), procDir: join(board, 'proc'), devDir: join(board, 'dev'), tuning: { fioSizeMiB: 1, thermalSampleMs: 5 } };

describe('a unit flashed with factoryQa: true, on its first boot', () => {
  it('is tested, leaves its signed report on the FAT and the data partition, answers the station, is switched off and ends factory-fresh', async () => {
    const { bench, fat, state } = await benchOnFatImage();
    let seenByStation: { withKey: { status: number; body: unknown }; withoutKey: { status: number; body: unknown } } | undefined;
    const boot = await bootUnit(bench, {
      profile: 'pi5',
      qa: { ...piBoard, runTool: toolsOf({ stdout: toolOutput('memtester-4.6-pass.txt') }) },
      withHttp: true,
      whileOn: async ({ baseUrl }) => {
        const url = `${baseUrl}/admin/api/factory-qa`;
        seenByStation = { withKey: await getJson(url, STATION_API_KEY), withoutKey: await getJson(url) };
      },
    });
    expect(boot).toMatchObject({ powerOffs: 1, qaRuns: 1, stackRuns: 0, state: { state: 'done' } });

    // The station's view while the unit was on: the whole report, only with its key.
    expect(seenByStation!.withoutKey.status).toBe(401);
    expect(seenByStation!.withKey.status).toBe(200);
    const answered = seenByStation!.withKey.body as Extract<FactoryQaState, { status: 'done' }>;
    expect(answered).toMatchObject({ status: 'done', afterwards: 'powering-off', report: { verdict: 'pass', profile: 'pi5', serialNumber: 'a1b2c3d4e5f60718', claimCode: CLAIM_CODE } });
    expect(answered.report.checks.map((c) => c.check)).toEqual([
      'serial-number', 'board-model', 'mac-addresses', 'claim-code', 'cpu-cores', 'cpu-model', 'memory-size', 'memory-test', 'nvme-present', 'nvme-pcie-link', 'nvme-smart',
      'disk-write-speed', 'disk-read-speed', 'temperature-idle', 'temperature-load', 'throttling', 'npu', 'ethernet-link', 'wifi-scan', 'watchdog', 'reboot-cycles', 'pi-bootloader',
    ]);

    // The report on the FAT, read back with mtools, verifies with the station's key and equals the data partition's.
    const onFat = await fat.read('memu-qa-report.json');
    expect(verifyQaReport(Buffer.from(onFat!), await fat.read('memu-qa-report.json.sig'), bench.station)).toMatchObject({ ok: true, report: { verdict: 'pass' } });
    expect(await readFile(join(bench.dataDir, 'factory-qa/memu-qa-report.json'), 'utf8')).toBe(onFat);

    // Factory-fresh: the unit's key and the flag are gone from the FAT, the claim code stays; only the image's files and the report on the data partition.
    const after = await state();
    expect(after.fat.map((n) => n.toLowerCase()).sort()).toEqual(['memu-preseed.json', 'memu-qa-report.json', 'memu-qa-report.json.sig']);
    expect(after.preseed).toEqual({ version: 1, claimCode: CLAIM_CODE, agentApiKey: STATION_API_KEY, hostname: 'family-box' });
    expect(after.data).toEqual([
      'docker',
      'docker/image',
      'docker/image/overlay2',
      'docker/image/overlay2/repositories.json',
      'factory-qa',
      'factory-qa/memu-qa-report.json',
      'factory-qa/memu-qa-report.json.sig',
      'stack',
      'stack/compose.yml',
    ]);
    expect(after.root).not.toContain('etc/ssh/ssh_host_ed25519_key');
    expect(after.machineId).toBe('');
  });

  it('a unit whose memory test finds a bit flip is not cleaned, stays on, and its console and report name the check', async () => {
    const { bench, fat, state } = await benchOnFatImage();
    const before = await state();
    const boot = await bootUnit(bench, { profile: 'pi5', qa: { ...piBoard, runTool: toolsOf({ stdout: toolOutput('memtester-4.6-bit-flip.txt'), code: 4 }) } });
    expect(boot).toMatchObject({ powerOffs: 0, qaRuns: 1, state: { state: 'failed', step: 'factory-qa-run', error: 'the unit failed factory QA: memory-test' } });
    expect(boot.console.at(-1)).toMatch(/\n {2}memory-test: .*Bit Flip/);
    const report = JSON.parse((await fat.read('memu-qa-report.json'))!);
    expect(report).toMatchObject({ verdict: 'fail', failingChecks: ['memory-test'] });
    const after = await state();
    expect(after.fat.map((n) => n.toLowerCase())).toContain('memu-qa.json');
    expect(after.preseed).toEqual(before.preseed);
    expect(after.data).toEqual(expect.arrayContaining(['agent/provisioning.json', 'factory-qa/shipped-listing.json']));
    expect(after.machineId).not.toBe('');
  });
});
