import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../../../helpers/memu-build.ts';
import { pi5Report, stationUnit, writeSignedReport } from '../../../../unit/image/factory-qa/station-fixtures.ts';

// Runs the real `memu` entry point (its bundle), as a factory station does: records from a
// directory of collected reports, labels from the records, thresholds from reports.
const MEMU = resolve(REPO_ROOT, 'bin/memu.mjs');

function memu(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [MEMU, ...args], { cwd, env: { ...process.env, MEMU_LOG_LEVEL: 'info' } }, (err, stdout, stderr) => {
      done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-cli-'));
  const codes = ['AAAA-BBBB-CCCC-DDDD', 'EEEE-FFFF-GGGG-HHHH', '1111-2222-3333-4444'];
  for (const [i, code] of codes.entries()) {
    const unit = await stationUnit(join(dir, 'keys'), code);
    const report = pi5Report((r) => {
      r.serialNumber = `unit-${i + 1}`;
      r.claimCode = code;
      if (i === 1) {
        r.checks[1]!.verdict = 'fail';
        r.verdict = 'fail';
        r.failingChecks = ['disk-write-speed'];
      }
    });
    await writeSignedReport(join(dir, 'reports', `slot${i + 1}`, 'memu-qa-report.json'), report, unit.privateKey);
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('memu qa', () => {
  it('records: verifies the reports and writes JSON and CSV; labels: one page per passed unit', async () => {
    const records = await memu(['--json', 'qa', 'records', 'reports', '--keys', 'keys', '--out', 'out'], dir);
    expect(records.code, records.stderr).toBe(0);
    expect(JSON.parse(records.stdout)).toMatchObject({ type: 'result', command: 'qa records', ok: true, passed: 2, failed: 1, rejected: 0, csv: join(dir, 'out/qa-records.csv') });
    const csv = await readFile(join(dir, 'out/qa-records.csv'), 'utf8');
    expect(csv.split('\r\n').slice(1, 4).map((l) => l.split(',').slice(0, 4).join(','))).toEqual([
      'unit-1,AAAA-BBBB-CCCC-DDDD,pass,',
      'unit-2,EEEE-FFFF-GGGG-HHHH,fail,disk-write-speed',
      'unit-3,1111-2222-3333-4444,pass,',
    ]);

    const labels = await memu(['qa', 'labels', 'out/qa-records.json', '--out', 'labels.pdf'], dir);
    expect(labels.code, labels.stderr).toBe(0);
    expect(labels.stdout).toBe(`wrote 2 labels (62 × 29 mm) to ${join(dir, 'labels.pdf')}; 1 unit without a pass gets none\n`);
    const pdf = (await readFile(join(dir, 'labels.pdf'))).toString('latin1');
    expect(pdf.startsWith('%PDF-')).toBe(true);
    expect(pdf.match(/\/Type \/Page\n/g)).toHaveLength(2);
  });

  it('records: a report with a bad signature exits 4 and is shown as rejected', async () => {
    const other = await stationUnit(join(dir, 'other-keys'), '5555-6666-7777-8888');
    await writeSignedReport(join(dir, 'reports', 'slot4', 'memu-qa-report.json'), pi5Report((r) => ((r.serialNumber = 'unit-4'), (r.claimCode = '5555-6666-7777-8888'))), other.privateKey);
    const records = await memu(['qa', 'records', 'reports', '--keys', 'keys', '--out', 'out2'], dir);
    expect(records.code).toBe(4);
    expect(records.stdout).toMatch(/^unit-4 +5555-6666-7777-8888 +REJECTED +slot4\/memu-qa-report\.json is signed by key [0-9a-f]{16}, which is none of the station's 3 trusted keys$/m);
    expect(records.stdout).toContain('2 passed, 1 failed, 1 rejected');
  });

  it('thresholds: prints n, min, p5, median and the suggestion per check; bad input exits 2', async () => {
    const result = await memu(['qa', 'thresholds', 'reports/slot1/memu-qa-report.json', 'reports/slot3/memu-qa-report.json', '--margin', '10'], dir);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split('\n')[0]).toMatch(/^check +bound +n +min +p5 +median +p95 +max +current +suggested$/);
    expect(result.stdout).toMatch(/^disk-write-speed +min +2 +412\.3 +412\.3 +412\.3 +412\.3 +412\.3 +200 +371\.1 MB\/s$/m);
    const bad = await memu(['qa', 'thresholds', 'keys/AAAA-BBBB-CCCC-DDDD.pub'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a QA report: is not JSON');
  });
});
