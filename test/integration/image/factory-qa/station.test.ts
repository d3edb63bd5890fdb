import { createHash, createPublicKey } from 'node:crypto';
import { access, copyFile, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPreseed } from '../../../../agent/provisioning/preseed-source.ts';
import { flashStation } from '../../../../image/factory-qa/station.ts';
import { createLogView } from '../../../../image/factory-qa/station-view.ts';
import { parseQaSettings, QA_REPORT_FILE_NAME, QA_REPORT_SIGNATURE_FILE_NAME, QA_SETTINGS_FILE_NAME, serializeQaReport, signQaReport } from '../../../../shared/contracts/qa-report.ts';
import { keyIdOf, loadPublicKey } from '../../../../shared/contracts/signature.ts';
import { openFatVolume } from '../../../../shared/fat/fat-volume.ts';
import { makeGptDisk, makeStationTestImage } from '../../../helpers/fat-disk.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';
import { pi5Report } from '../../../unit/image/factory-qa/station-fixtures.ts';

// The station's bench through the real `memu` entry point: a small Memu-shaped disk image
// (GPT, FAT first partition made by mkfs.vfat) flashed to three image files at once by the
// real flasher, preseeds and keys written and read with mtools, reports signed with each
// drive's own key.

const silent = pino({ level: 'silent' });
let dir: string;
let image: string;
let targets: string[];
const keys = () => join(dir, 'keys');

/** What the drive's FAT says: its preseed (through the agent's own reader) and its QA key. */
async function unitOn(target: string) {
  const preseed = await readPreseed({ device: target, log: silent });
  if (preseed.state !== 'valid') throw new Error(`no valid preseed on ${target}: ${JSON.stringify(preseed)}`);
  const settingsBytes = await (await openFatVolume(target)).readFile(QA_SETTINGS_FILE_NAME, 16 * 1024);
  const settings = parseQaSettings(settingsBytes.toString());
  if (!settings.ok) throw new Error(settings.problems.join('; '));
  return { preseed: preseed.settings, settings: settings.settings, signingKey: settings.signingKey };
}

/**
 * Stands in for the unit's QA boot (the agent's QA run, which test/integration/agent/factory-qa
 * and the QEMU test cover): signs a report with the key the station put on this drive and
 * leaves it on the FAT exactly as agent/factory-qa/qa-run.ts does.
 */
async function unitLeavesReport(target: string, serialNumber: string): Promise<void> {
  const unit = await unitOn(target);
  const bytes = Buffer.from(serializeQaReport(pi5Report((r) => ((r.serialNumber = serialNumber), (r.claimCode = unit.preseed.claimCode!)))));
  const fat = await openFatVolume(target);
  await fat.writeFileAtomic(QA_REPORT_FILE_NAME, 'memu-qa-report.tmp', bytes);
  await fat.writeFileAtomic(QA_REPORT_SIGNATURE_FILE_NAME, 'memu-qa-report.sig.tmp', Buffer.from(signQaReport(bytes, unit.signingKey)));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-station-'));
  image = await makeStationTestImage(dir);
  targets = ['slot1.img', 'slot2.img', 'slot3.img'].map((n) => join(dir, n));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memu qa station', () => {
  it('flashes three drives at once, each its own unit; collect records the two that reported and names the one that did not', async () => {
    const flashed = await runMemu(['--json', 'qa', 'station', 'flash', image, ...targets, '--keys', keys()]);
    expect(flashed.code, flashed.stderr.slice(-3000)).toBe(0);
    const result = commandResult<{ ready: number; failed: number; stationFile: string; slots: { slot: number; target: string; stage: string; claimCode: string; keyId: string }[] }>(flashed);
    expect(result).toMatchObject({ command: 'qa station flash', ok: true, ready: 3, failed: 0 });
    // The live view's lines: every slot went through each stage, with the flasher's own progress lines.
    const lines = flashed.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; slot?: number; stage?: string; event?: string });
    for (const slot of [1, 2, 3]) {
      expect(lines.filter((l) => l.type === 'slot' && l.slot === slot).map((l) => l.stage)).toEqual(['flashing', 'verifying', 'preseeding', 'preseeding', 'ready']);
      expect(lines.some((l) => l.type === 'progress' && l.slot === slot && l.stage === 'verify' && l.event === 'done')).toBe(true);
    }

    const units = await Promise.all(targets.map(unitOn));
    const codes = units.map((u) => u.preseed.claimCode);
    expect(new Set(codes).size).toBe(3);
    for (const [i, unit] of units.entries()) {
      expect(unit.preseed).toEqual({ version: 1, factoryQa: true, claimCode: codes[i] });
      expect(unit.settings.reportToFat).toBe(true);
      // The station trusts exactly this drive's key, under this drive's claim code.
      const trusted = loadPublicKey(await readFile(join(keys(), `${codes[i]}.pub`)));
      expect(keyIdOf(trusted)).toBe(keyIdOf(createPublicKey(unit.signingKey)));
      expect(result.slots[i]).toMatchObject({ slot: i + 1, target: targets[i], stage: 'ready', claimCode: codes[i], keyId: keyIdOf(trusted) });
    }
    const station = JSON.parse(await readFile(result.stationFile, 'utf8')) as { units: { target: string; result: string; claimCode: string; image: { sha256: string } }[] };
    const imageSha = createHash('sha256').update(await readFile(image)).digest('hex');
    expect(station.units.map((u) => [u.target, u.result, u.claimCode, u.image.sha256]).sort()).toEqual(targets.map((t, i) => [t, 'ready', codes[i], imageSha]).sort());

    await unitLeavesReport(targets[0]!, 'serial-1');
    await unitLeavesReport(targets[1]!, 'serial-2');
    const collected = await runMemu(['qa', 'station', 'collect', ...targets, '--keys', keys(), '--out', join(dir, 'out')]);
    expect(collected.code, collected.stderr.slice(-3000)).toBe(2);
    expect(collected.stdout).toMatch(new RegExp(`^1 +${targets[0]} +PASS +serial-1 +${codes[0]}`, 'm'));
    expect(collected.stdout).toMatch(new RegExp(`^2 +${targets[1]} +PASS +serial-2 +${codes[1]}`, 'm'));
    expect(collected.stdout).toContain(`NO REPORT`);
    expect(collected.stdout).toContain(`no report on ${targets[2]}: the unit has not finished QA or was not booted`);
    expect(collected.stdout).toContain('2 passed, 0 failed, 0 rejected, 1 without a report; 2 records');
    const records = JSON.parse(await readFile(join(dir, 'out/qa-records.json'), 'utf8')) as { records: { serialNumber: string; claimCode: string; verdict: string }[] };
    expect(records.records.map((r) => [r.serialNumber, r.claimCode, r.verdict])).toEqual([
      ['serial-1', codes[0], 'pass'],
      ['serial-2', codes[1], 'pass'],
    ]);
  });

  it('collect: a serial number reported by two drives, or a cloned drive, is rejected on both, never passed (exit 4)', async () => {
    await unitLeavesReport(targets[2]!, 'serial-1');
    const collected = await runMemu(['qa', 'station', 'collect', targets[2]!, '--keys', keys(), '--out', join(dir, 'out')]);
    expect(collected.code).toBe(4);
    expect(collected.stdout).toMatch(new RegExp(`^1 +${targets[2]} +REJECTED +serial-1 .*serial number serial-1 is in 2 reports`, 'm'));
    const records = JSON.parse(await readFile(join(dir, 'out/qa-records.json'), 'utf8')) as { records: { serialNumber: string; verdict: string }[] };
    expect(records.records.filter((r) => r.serialNumber === 'serial-1').map((r) => r.verdict)).toEqual(['rejected', 'rejected']);

    // A cloned drive carries the very same report bytes: still two reports, both rejected.
    const clone = join(dir, 'clone.img');
    await copyFile(targets[0]!, clone);
    const cloned = await runMemu(['qa', 'station', 'collect', targets[0]!, clone, '--keys', keys(), '--out', join(dir, 'out-clone')]);
    expect(cloned.code).toBe(4);
    expect(cloned.stdout).toContain('0 passed, 0 failed, 2 rejected, 0 without a report; 2 records');
  });

  it('refuses a target given twice under two names before writing anything (exit 2)', async () => {
    const fresh = join(dir, 'fresh.img');
    await symlink(targets[0]!, join(dir, 'alias.img'));
    const r = await runMemu(['qa', 'station', 'flash', image, fresh, targets[0]!, join(dir, 'alias.img'), '--keys', join(dir, 'keys-twice')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${targets[0]} and ${join(dir, 'alias.img')} are the same file: each slot needs a drive of its own`);
    await expect(access(fresh)).rejects.toThrow();
    await expect(access(join(dir, 'keys-twice'))).rejects.toThrow();
  });

  it('a drive that vanishes during the flash fails its slot with the reason; the other slot becomes ready', async () => {
    const batch = ['a.img', 'b.img'].map((n) => join(dir, n));
    const done = await flashStation({
      image,
      targets: batch,
      keysDir: join(dir, 'keys-vanish'),
      yes: false,
      unmount: false,
      log: silent,
      view: createLogView(silent),
      // Between the write and the read-back, the second drive is pulled (its file removed).
      testHooks: { afterWrite: async (path) => (path === batch[1] ? rm(path) : undefined) },
    });
    expect(done.slots.map((s) => s.stage)).toEqual(['ready', 'failed']);
    expect(done.slots[1]!.reason).toMatch(new RegExp(`^${batch[1]} went away or failed while flashing \\(ENOENT: no such file or directory, open '.*'\\): check the drive and its cable, then flash it again$`));
    expect(done.exitCode).toBe(6);
    const station = JSON.parse(await readFile(done.stationFile, 'utf8')) as { units: { slot: number; result: string; claimCode?: string }[] };
    const slot2 = station.units.find((u) => u.slot === 2)!;
    expect(slot2).toMatchObject({ result: 'failed' });
    expect(slot2.claimCode).toBeUndefined();
    expect(station.units.filter((u) => u.result === 'ready')).toHaveLength(1);
  });

  it('a drive whose FAT partition cannot be written fails while preseeding, and its key is not left trusted', async () => {
    const noFat = (await makeGptDisk(dir, [{ type: 'linux', sizeMiB: 1 }], 'no-fat.img')).path;
    const done = await flashStation({ image: noFat, targets: [join(dir, 'no-fat-target.img')], keysDir: join(dir, 'keys-no-fat'), yes: false, unmount: false, log: silent, view: createLogView(silent) });
    expect(done.slots[0]).toMatchObject({ stage: 'failed', exitCode: 6 });
    expect(done.slots[0]!.reason).toMatch(/^cannot write memu-qa\.json to .*no-fat-target\.img: .*FAT/);
    expect((await readdir(join(dir, 'keys-no-fat'))).filter((n) => n.endsWith('.pub'))).toEqual([]);
  });
});
