import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildQaRecords, qaRecordsCsv, writeQaRecords } from '../../../../image/factory-qa/qa-records.ts';
import { collectReports, loadTrustedQaKeys } from '../../../../image/factory-qa/qa-report-files.ts';
import { pi5Report, stationUnit, writeSignedReport } from './station-fixtures.ts';

let dir: string;
let keys: string;
let reports: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-records-'));
  keys = join(dir, 'keys');
  reports = join(dir, 'reports');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const A = 'AAAA-BBBB-CCCC-DDDD';
const B = 'EEEE-FFFF-GGGG-HHHH';
const C = '1111-2222-3333-4444';
const D = '5555-6666-7777-8888';

describe('QA records', () => {
  it('a passing and a failing unit are recorded with their claim codes, MACs and failing checks', async () => {
    const a = await stationUnit(keys, A);
    const b = await stationUnit(keys, B);
    await writeSignedReport(join(reports, 'slot1/memu-qa-report.json'), pi5Report((r) => ((r.serialNumber = 'serial-a'), (r.claimCode = A))), a.privateKey);
    const failing = pi5Report((r) => {
      r.serialNumber = 'serial-b';
      r.claimCode = B;
      r.checks[1]!.verdict = 'fail';
      r.verdict = 'fail';
      r.failingChecks = ['disk-write-speed'];
    });
    await writeSignedReport(join(reports, 'slot2/memu-qa-report.json'), failing, b.privateKey);
    const records = buildQaRecords(await collectReports(reports, await loadTrustedQaKeys(keys)));
    expect(records).toEqual([
      {
        serialNumber: 'serial-a',
        claimCode: A,
        macAddresses: 'eth0=2c:cf:67:01:02:03 wlan0=2c:cf:67:01:02:04',
        profile: 'pi5',
        imageVersion: '0.1.0',
        verdict: 'pass',
        failingChecks: [],
        problem: '',
        testedAt: '2026-12-05T09:03:12.500Z',
        reportFile: 'slot1/memu-qa-report.json',
      },
      expect.objectContaining({ serialNumber: 'serial-b', claimCode: B, verdict: 'fail', failingChecks: ['disk-write-speed'], problem: '' }),
    ]);
  });

  it('bad signatures, unsigned reports and reports signed with another unit\'s key are rejected, each saying why; nothing of theirs passes', async () => {
    const a = await stationUnit(keys, A);
    const c = await stationUnit(keys, C);
    const stranger = await stationUnit(join(dir, 'elsewhere'), D);
    await writeSignedReport(join(reports, 'tampered.json'), pi5Report((r) => ((r.serialNumber = 'serial-t'), (r.claimCode = A))), a.privateKey);
    const tampered = (await readFile(join(reports, 'tampered.json'), 'utf8')).replace('"measured": 8052', '"measured": 9999');
    await writeFile(join(reports, 'tampered.json'), tampered);
    await writeSignedReport(join(reports, 'unsigned.json'), pi5Report((r) => ((r.serialNumber = 'serial-u'), (r.claimCode = C))), undefined);
    await writeSignedReport(join(reports, 'stranger.json'), pi5Report((r) => ((r.serialNumber = 'serial-s'), (r.claimCode = D))), stranger.privateKey);
    await writeSignedReport(join(reports, 'swapped.json'), pi5Report((r) => ((r.serialNumber = 'serial-w'), (r.claimCode = A))), c.privateKey);
    await writeFile(join(reports, 'junk.json'), 'not json');
    // A FAT copied whole brings the preseed and the QA settings: neither is a report.
    await writeFile(join(reports, 'memu-preseed.json'), '{"version":1}');
    await writeFile(join(reports, 'memu-qa.json'), '{"version":1}');
    const records = buildQaRecords(await collectReports(reports, await loadTrustedQaKeys(keys)));
    expect(records.map((r) => [r.reportFile, r.serialNumber, r.verdict, r.problem])).toEqual([
      ['junk.json', '', 'rejected', 'junk.json has no signature file (memu-qa-report.json.sig beside it)'],
      ['stranger.json', 'serial-s', 'rejected', expect.stringMatching(/^stranger\.json is signed by key [0-9a-f]{16}, which is none of the station's 2 trusted keys$/)],
      ['tampered.json', 'serial-t', 'rejected', 'tampered.json its signature does not verify: signature does not match the signed file'],
      ['unsigned.json', 'serial-u', 'rejected', 'unsigned.json has no signature file (memu-qa-report.json.sig beside it)'],
      ['swapped.json', 'serial-w', 'rejected', `swapped.json is signed with the key made for claim code ${C} but reports claim code ${A}`],
    ]);
  });

  it('a serial number or claim code in two reports rejects both, naming the files', async () => {
    const a = await stationUnit(keys, A);
    const b = await stationUnit(keys, B);
    await writeSignedReport(join(reports, 'first.json'), pi5Report((r) => ((r.serialNumber = 'same-serial'), (r.claimCode = A))), a.privateKey);
    await writeSignedReport(join(reports, 'second.json'), pi5Report((r) => ((r.serialNumber = 'same-serial'), (r.claimCode = B))), b.privateKey);
    const records = buildQaRecords(await collectReports(reports, await loadTrustedQaKeys(keys)));
    expect(records.map((r) => [r.verdict, r.problem])).toEqual([
      ['rejected', 'serial number same-serial is in 2 reports (first.json, second.json): keep only the unit\'s latest report, or test the unit again'],
      ['rejected', 'serial number same-serial is in 2 reports (first.json, second.json): keep only the unit\'s latest report, or test the unit again'],
    ]);
  });

  it("a forged report naming a genuine unit's serial does not push the genuine one out", async () => {
    const a = await stationUnit(keys, A);
    const forger = await stationUnit(join(dir, 'elsewhere'), B);
    await writeSignedReport(join(reports, 'genuine.json'), pi5Report((r) => ((r.serialNumber = 'serial-a'), (r.claimCode = A))), a.privateKey);
    await writeSignedReport(join(reports, 'forged.json'), pi5Report((r) => ((r.serialNumber = 'serial-a'), (r.claimCode = A))), forger.privateKey);
    const records = buildQaRecords(await collectReports(reports, await loadTrustedQaKeys(keys)));
    expect(records.map((r) => [r.reportFile, r.verdict])).toEqual([
      ['forged.json', 'rejected'],
      ['genuine.json', 'pass'],
    ]);
  });

  it('writes JSON and CSV durably; the CSV quotes commas and defuses spreadsheet formulas', async () => {
    const records = buildQaRecords([
      { file: 'x.json', ok: false, problem: 'has no signature file', report: pi5Report((r) => (r.serialNumber = '=HYPERLINK("x")')) },
      { file: 'y.json', ok: true, keyId: '0123456789abcdef', report: pi5Report((r) => ((r.serialNumber = 'y'), (r.claimCode = B))) },
    ]);
    const csv = qaRecordsCsv(records);
    expect(csv.split('\r\n')[0]).toBe('serialNumber,claimCode,verdict,failingChecks,problem,macAddresses,profile,imageVersion,testedAt,reportFile');
    expect(csv).toContain(`"'=HYPERLINK(""x"")",7K3M-Q9XD-2HFT-B8RW,rejected,,x.json has no signature file,`);
    const written = await writeQaRecords(dir, records, new Date('2026-12-05T10:00:00Z'));
    expect((await readdir(dir)).sort()).toEqual(['qa-records.csv', 'qa-records.json']);
    expect(JSON.parse(await readFile(written.json, 'utf8'))).toEqual({ generatedAt: '2026-12-05T10:00:00.000Z', records });
    expect(await readFile(written.csv, 'utf8')).toBe(csv);
  });

  it('a keys directory without keys, or with a file that is not a key, is a clear error', async () => {
    await stationUnit(keys, A);
    await writeFile(join(keys, 'broken.pub'), 'not a key');
    await expect(loadTrustedQaKeys(keys)).rejects.toThrow(`${join(keys, 'broken.pub')} is not an ed25519 public key`);
    await expect(loadTrustedQaKeys(reports)).rejects.toThrow(`cannot read the trusted keys directory ${reports}: ENOENT`);
  });
});
