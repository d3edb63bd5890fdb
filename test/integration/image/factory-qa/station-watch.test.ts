import { freePort } from '../../../helpers/free-port.ts';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStationLink } from '../../../../agent/factory-qa/station-link.ts';
import { readPreseed } from '../../../../agent/provisioning/preseed-source.ts';
import { parseQaSettings, QA_REPORT_FILE_NAME, QA_REPORT_SIGNATURE_FILE_NAME, QA_SETTINGS_FILE_NAME, serializeQaReport, signQaReport, type QaReport } from '../../../../shared/contracts/qa-report.ts';
import { openFatVolume } from '../../../../shared/fat/fat-volume.ts';
import { makeStationTestImage } from '../../../helpers/fat-disk.ts';
import { REPO_ROOT, runMemu, TEST_CACHE_DIR } from '../../../helpers/memu-build.ts';
import { pi5Report } from '../../../unit/image/factory-qa/station-fixtures.ts';

// The bench over the LAN: three drives flashed by the real `memu qa station flash
// --station-url`, a real `memu qa station watch --until-done --json` process, and the
// device's own station link (agent/factory-qa/station-link.ts) sending each unit's
// progress and its report signed with the key the station put in that drive's
// memu-qa.json, as the agent's QA run does on a real boot (the QEMU test runs the whole
// agent). The third unit's report is forged: signed by a key the station never made.

const silent = pino({ level: 'silent' });
let dir: string;
let image: string;
let targets: string[];
const keys = () => join(dir, 'keys');
const out = () => join(dir, 'out');


function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** What the drive's FAT tells its unit: the claim code (through the agent's preseed reader) and memu-qa.json. */
async function unitOn(target: string) {
  const preseed = await readPreseed({ device: target, log: silent });
  if (preseed.state !== 'valid') throw new Error(`no valid preseed on ${target}`);
  const settings = parseQaSettings((await (await openFatVolume(target)).readFile(QA_SETTINGS_FILE_NAME, 16 * 1024)).toString());
  if (!settings.ok) throw new Error(settings.problems.join('; '));
  return { claimCode: preseed.settings.claimCode!, stationUrl: settings.settings.stationUrl, signingKey: settings.signingKey };
}

function failingReport(serialNumber: string, claimCode: string): QaReport {
  return pi5Report((r) => {
    r.serialNumber = serialNumber;
    r.claimCode = claimCode;
    const memory = r.checks.find((c) => c.check === 'memory-size')!;
    memory.verdict = 'fail';
    memory.reason = 'MemTotal is 3.9 GiB, below the 7.5 GiB the profile needs.';
    r.verdict = 'fail';
    r.failingChecks = ['memory-size'];
  });
}

/** Starts the watch and resolves once it says where it listens. */
function startWatch(args: string[]): Promise<{ child: ChildProcessWithoutNullStreams; lines: () => Record<string, unknown>[]; exited: Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [`${REPO_ROOT}bin/memu.mjs`, '--json', 'qa', 'station', 'watch', ...args], { cwd: REPO_ROOT, env: { ...process.env, MEMU_CACHE_DIR: TEST_CACHE_DIR } });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.on('close', r));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  void exited.then(() => clearTimeout(timer));
  const lines = () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (lines().some((l) => l.type === 'listening')) resolve({ child, lines, exited, stderr: () => stderr });
    });
    void exited.then((code) => reject(new Error(`the watch ended (exit ${code}) before listening:\n${stderr.slice(-3000)}`)));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-watch-'));
  image = await makeStationTestImage(dir);
  targets = ['slot1.img', 'slot2.img', 'slot3.img'].map((n) => join(dir, n));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memu qa station watch', () => {
  it('follows three units over the LAN: passed, FAILED and a forged report rejected (exit 4), records written as collect writes them', async () => {
    const port = await freePort();
    const stationUrl = `http://127.0.0.1:${port}`;
    const flashed = await runMemu(['--json', 'qa', 'station', 'flash', image, ...targets, '--keys', keys(), '--station-url', stationUrl]);
    expect(flashed.code, flashed.stderr.slice(-3000)).toBe(0);
    const units = await Promise.all(targets.map(unitOn));
    expect(units.map((u) => u.stationUrl)).toEqual([stationUrl, stationUrl, stationUrl]);

    const watch = await startWatch(['--keys', keys(), '--out', out(), '--listen', `127.0.0.1:${port}`, '--until-done', '--timeout', '1']);
    expect(watch.lines().find((l) => l.type === 'listening')).toEqual({ type: 'listening', url: stationUrl });
    // Before any unit speaks, every slot is booting, on the JSON view and the page.
    const before = JSON.parse(await get(`${stationUrl}/qa/units`)) as { slots: { slot: number; claimCode: string; stage: string }[] };
    expect(before.slots.map((s) => [s.slot, s.claimCode, s.stage])).toEqual(units.map((u, i) => [i + 1, u.claimCode, 'booting']));
    const page = await get(`${stationUrl}/`);
    for (const u of units) expect(page).toContain(`<td>${u.claimCode}</td><td>booting</td>`);

    const reports = [
      pi5Report((r) => ((r.serialNumber = 'serial-1'), (r.claimCode = units[0]!.claimCode))),
      failingReport('serial-2', units[1]!.claimCode),
      pi5Report((r) => ((r.serialNumber = 'serial-3'), (r.claimCode = units[2]!.claimCode))),
    ];
    const stranger = generateKeyPairSync('ed25519').privateKey;
    const deliveries = await Promise.all(
      units.map(async (u, i) => {
        const link = createStationLink({ stationUrl: u.stationUrl!, claimCode: u.claimCode, log: silent, finalDeliveryMs: 20_000 });
        link.update({ state: 'testing', step: 'identity', checksDone: 0, stepsDone: 0, stepsTotal: 13 });
        link.update({ state: 'testing', step: 'disk-speed', serialNumber: reports[i]!.serialNumber, checksDone: 9, stepsDone: 5, stepsTotal: 13 });
        await new Promise((r) => setTimeout(r, 200));
        const bytes = Buffer.from(serializeQaReport(reports[i]!));
        const signature = Buffer.from(signQaReport(bytes, i === 2 ? stranger : u.signingKey));
        // The passing unit's report also goes onto its FAT, as the agent leaves it there too.
        if (i === 0) {
          const fat = await openFatVolume(targets[0]!);
          await fat.writeFileAtomic(QA_REPORT_FILE_NAME, 'memu-qa-report.tmp', bytes);
          await fat.writeFileAtomic(QA_REPORT_SIGNATURE_FILE_NAME, 'memu-qa-report.sig.tmp', signature);
        }
        return link.finish({ state: 'done', serialNumber: reports[i]!.serialNumber, report: bytes.toString('base64'), signature: signature.toString('base64') });
      }),
    );
    expect(deliveries.map((d) => d.delivered && (d.answer as { verdict: string }).verdict)).toEqual(['pass', 'fail', 'rejected']);

    const code = await watch.exited;
    expect(code, watch.stderr().slice(-3000)).toBe(4);
    const lines = watch.lines();
    const stagesOf = (claimCode: string) => lines.filter((l) => l.type === 'unit' && l.claimCode === claimCode).map((l) => l.stage);
    expect(stagesOf(units[0]!.claimCode)).toContain('testing');
    expect(stagesOf(units[0]!.claimCode).at(-1)).toBe('passed');
    expect(stagesOf(units[1]!.claimCode).at(-1)).toBe('failed');
    expect(stagesOf(units[2]!.claimCode).at(-1)).toBe('rejected');
    const testingLine = lines.find((l) => l.type === 'unit' && l.stage === 'testing' && l.step === 'disk-speed');
    expect(testingLine).toMatchObject({ checksDone: 9, stepsDone: 5, stepsTotal: 13, serialNumber: expect.stringMatching(/^serial-/) });
    const result = lines.at(-1)!;
    expect(result).toMatchObject({ type: 'result', command: 'qa station watch', ok: false, exitCode: 4, ended: 'done', passed: 1, failed: 1, rejected: 1, withoutReport: 0 });
    expect((result.slots as { slot: number; stage: string; failingChecks?: string[]; reason?: string }[]).map((s) => [s.slot, s.stage, s.failingChecks ?? s.reason?.replace(/^.* (is signed by key) .*$/, '$1')])).toEqual([
      [1, 'passed', undefined],
      [2, 'failed', ['memory-size']],
      [3, 'rejected', 'is signed by key'],
    ]);

    const records = JSON.parse(await readFile(join(out(), 'qa-records.json'), 'utf8')) as { records: { serialNumber: string; claimCode: string; verdict: string }[] };
    expect(records.records.map((r) => [r.serialNumber, r.claimCode, r.verdict])).toEqual([
      ['serial-1', units[0]!.claimCode, 'pass'],
      ['serial-2', units[1]!.claimCode, 'fail'],
      ['serial-3', units[2]!.claimCode, 'rejected'],
    ]);
    expect(await readFile(join(out(), 'qa-records.csv'), 'utf8')).toMatch(/^serial-1,.*,pass,/m);

    // The same report read back from the drive later is the copy the watch kept, not a duplicate that would reject the unit.
    const collected = await runMemu(['qa', 'station', 'collect', targets[0]!, '--keys', keys(), '--out', out()]);
    expect(collected.code, collected.stderr.slice(-2000)).toBe(0);
    expect(collected.stdout).toMatch(new RegExp(`^1 +${targets[0]} +PASS +serial-1 +${units[0]!.claimCode}`, 'm'));
  });

  it('--timeout names the units that never reported (exit 2); --station-url must be http://HOST:PORT', async () => {
    const watch = await startWatch(['--keys', keys(), '--out', join(dir, 'out-timeout'), '--listen', '127.0.0.1:0', '--until-done', '--timeout', '0.02']);
    const code = await watch.exited;
    expect(code).toBe(2);
    const result = watch.lines().at(-1)!;
    // The keys directory's station file still names the last batch (the three above): here no unit speaks.
    expect(result).toMatchObject({ ok: false, exitCode: 2, ended: 'timeout', withoutReport: 3 });

    const bad = await runMemu(['qa', 'station', 'flash', image, join(dir, 'never.img'), '--keys', join(dir, 'keys-bad'), '--station-url', 'https://station:8470/qa']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--station-url https://station:8470/qa is https:, but a unit reaches the station over plain http: give http://HOST:PORT');
  });
});
