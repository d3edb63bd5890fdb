import { request } from 'node:http';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createWatchJsonLinesView, renderWatchTable, watchSummary } from '../../../../image/factory-qa/station-watch-view.ts';
import {
  batchDone,
  latestBatch,
  parseListen,
  slotsToWatch,
  slotWithRecord,
  slotWithUnitState,
  watchExitCode,
  watchPage,
  watchStation,
  type WatchSlot,
} from '../../../../image/factory-qa/station-watch.ts';
import type { StationUnit } from '../../../../image/factory-qa/station.ts';
import type { QaRecord } from '../../../../image/factory-qa/qa-records.ts';
import { writeJsonDurably } from '../../../../shared/files/durable-files.ts';
import { QA_UNIT_STATE_FORMAT, serializeQaReport, signQaReport, type QaUnitState } from '../../../../shared/contracts/qa-report.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import { pi5Report, stationUnit } from './station-fixtures.ts';

const A = '7K3M-Q9XD-2HFT-B8RW';
const B = '2HFT-B8RW-7K3M-Q9XD';
const image = { path: '/img/memu-pi5-0.1.0.img', version: '0.1.0', sha256: 'ab'.repeat(32) };
const unit = (slot: number, claimCode: string | undefined, batch?: string, reason?: string): StationUnit => ({
  slot,
  target: `/dev/sd${'abcdef'[slot]}`,
  result: claimCode ? 'ready' : 'failed',
  ...(claimCode ? { claimCode, keyId: 'k' } : {}),
  ...(reason ? { reason } : {}),
  image,
  flashedAt: '2026-12-06T04:00:00.000Z',
  ...(batch ? { batch } : {}),
});
const record = (verdict: QaRecord['verdict'], fields: Partial<QaRecord> = {}): QaRecord => ({
  serialNumber: 'serial-1',
  claimCode: A,
  macAddresses: '',
  profile: 'pi5',
  imageVersion: '0.1.0',
  verdict,
  failingChecks: [],
  problem: '',
  testedAt: '2026-12-06T04:10:00.000Z',
  reportFile: 'serial-1-0123456789ab/memu-qa-report.json',
  ...fields,
});
const testing = (fields: Partial<QaUnitState> = {}): QaUnitState => ({ format: QA_UNIT_STATE_FORMAT, claimCode: A, state: 'testing', ...fields });

describe('the slots a watch follows', () => {
  it('are the latest batch of the station file, by its batch id or (older files) the last run of distinct slots', () => {
    const units = [unit(1, 'AAAA-AAAA-AAAA-AAAA', 'b1'), unit(2, 'BBBB-BBBB-BBBB-BBBB', 'b1'), unit(2, B, 'b2'), unit(1, A, 'b2')];
    expect(latestBatch(units).map((u) => u.claimCode)).toEqual([B, A]);
    const old = [unit(1, 'AAAA-AAAA-AAAA-AAAA'), unit(2, 'BBBB-BBBB-BBBB-BBBB'), unit(1, A), unit(2, B)];
    expect(latestBatch(old).map((u) => u.claimCode)).toEqual([A, B]);
    expect(slotsToWatch(units)).toEqual([
      { slot: 1, target: '/dev/sdb', claimCode: A, stage: 'booting' },
      { slot: 2, target: '/dev/sdc', claimCode: B, stage: 'booting' },
    ]);
    expect(slotsToWatch([unit(1, undefined, 'b3', '/dev/sdb went away')])).toEqual([{ slot: 1, target: '/dev/sdb', stage: 'not-flashed', reason: '/dev/sdb went away' }]);
  });

  it('move from booting to testing with the progress, to passed, FAILED or REJECTED only through a recorded report, and back to testing when tested again', () => {
    const booting = slotsToWatch([unit(1, A, 'b')])[0]!;
    const t = slotWithUnitState(booting, testing({ step: 'disk-speed', checksDone: 11, stepsDone: 5, stepsTotal: 13, serialNumber: 'serial-1' }), 1000);
    expect(t).toMatchObject({ stage: 'testing', step: 'disk-speed', checksDone: 11, serialNumber: 'serial-1', lastContactAt: 1000 });
    expect(slotWithRecord(t, record('pass'))).toEqual({ slot: 1, target: '/dev/sdb', claimCode: A, stage: 'passed', serialNumber: 'serial-1', lastContactAt: 1000, reportFile: record('pass').reportFile });
    const failed = slotWithRecord(t, record('fail', { failingChecks: ['memory-size', 'nvme-present'] }));
    expect(failed).toMatchObject({ stage: 'failed', failingChecks: ['memory-size', 'nvme-present'] });
    expect(failed.step).toBeUndefined();
    expect(slotWithRecord(t, record('rejected', { problem: 'x its signature does not verify' }))).toMatchObject({ stage: 'rejected', reason: 'x its signature does not verify' });
    const again = slotWithUnitState(failed, testing({ step: 'identity' }), 2000);
    expect(again).toMatchObject({ stage: 'testing', step: 'identity', reportFile: record('pass').reportFile });
    expect(again.failingChecks).toBeUndefined();
    expect(slotWithUnitState(t, { format: QA_UNIT_STATE_FORMAT, claimCode: A, state: 'error', reason: 'memu-qa.json is missing' }, 3000)).toMatchObject({ stage: 'error', reason: 'memu-qa.json is missing' });
  });

  it('are done when every unit of the batch has a report; exit 4 for any rejected, 2 for a unit without one, else 0', () => {
    const slots: WatchSlot[] = [
      { slot: 1, target: 'a', claimCode: A, stage: 'passed' },
      { slot: 2, target: 'b', claimCode: B, stage: 'failed', failingChecks: ['npu'] },
      { slot: 3, target: 'c', stage: 'not-flashed', reason: 'EIO' },
    ];
    expect(batchDone(slots)).toBe(true);
    expect(watchExitCode(slots)).toBe(0);
    const withError: WatchSlot[] = [...slots, { slot: 4, target: 'd', claimCode: 'CCCC-CCCC-CCCC-CCCC', stage: 'error', reason: 'no key' }];
    expect(batchDone(withError)).toBe(false);
    expect(watchExitCode(withError)).toBe(2);
    expect(watchExitCode([...withError, { slot: 5, target: 'e', claimCode: 'DDDD-DDDD-DDDD-DDDD', stage: 'rejected' }])).toBe(4);
    // A unit of an earlier batch that reports does not hold this batch up.
    expect(batchDone([...slots, { slot: 1, target: 'x', claimCode: 'EEEE-EEEE-EEEE-EEEE', stage: 'testing', earlierBatch: true }])).toBe(true);
  });
});

describe('the watch table', () => {
  const bench: WatchSlot[] = [
    { slot: 1, target: '/dev/sdb', claimCode: A, stage: 'testing', step: 'disk-speed', stepsDone: 5, stepsTotal: 13, checksDone: 11, serialNumber: 'serial-1' },
    { slot: 2, target: '/dev/sdc', claimCode: B, stage: 'failed', serialNumber: 'serial-2', failingChecks: ['memory-size', 'nvme-present'] },
    { slot: 3, target: '/dev/sdd', claimCode: 'CCCC-CCCC-CCCC-CCCC', stage: 'booting' },
    { slot: 4, target: '/dev/sde', claimCode: 'DDDD-DDDD-DDDD-DDDD', stage: 'rejected', reason: 'its signature does not verify' },
    { slot: 5, target: '/dev/sdf', stage: 'not-flashed', reason: 'EIO' },
    { slot: 6, target: '/dev/sdg', claimCode: 'EEEE-EEEE-EEEE-EEEE', stage: 'passed', serialNumber: 'serial-6' },
  ];

  it('shows per slot its unit, state and progress or result', () => {
    const lines = renderWatchTable(bench);
    expect(lines[0]).toMatch(/^slot +target +claim code +state +serial +progress \/ result$/);
    expect(lines[1]).toMatch(new RegExp(`^1 +/dev/sdb +${A} +testing +serial-1 +disk-speed, step 6 of 13, 11 checks done$`));
    expect(lines[2]).toMatch(new RegExp(`^2 +/dev/sdc +${B} +FAILED +serial-2 +memory-size, nvme-present$`));
    expect(lines[3]).toMatch(/^3 +\/dev\/sdd +CCCC-CCCC-CCCC-CCCC +booting +no contact yet$/);
    expect(lines[4]).toMatch(/^4 .*REJECTED +its signature does not verify$/);
    expect(lines[5]).toMatch(/^5 +\/dev\/sdf +not flashed +EIO$/);
    expect(lines[6]).toMatch(/^6 .*PASSED +serial-6$/);
    expect(watchSummary(bench)).toBe('1 passed, 1 failed, 1 rejected, 2 without a report (slots 1, 3)');
    expect(Math.max(...renderWatchTable(bench, { columns: 50 }).map((l) => l.length))).toBeLessThanOrEqual(50);
  });

  it('the page at / lists the slots, escaped', () => {
    const page = watchPage([{ slot: 1, target: '<script>', claimCode: A, stage: 'error', reason: 'a & b' }]);
    expect(page).toContain('<td>&#60;script&#62;</td>');
    expect(page).toContain('<td>ERROR</td><td></td><td>a &#38; b</td>');
    expect(page).toContain('http-equiv="refresh"');
  });

  it('--listen is HOST:PORT', () => {
    expect(parseListen('0.0.0.0:8470')).toEqual({ host: '0.0.0.0', port: 8470 });
    expect(parseListen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(() => parseListen('8470')).toThrow('--listen 8470 is not HOST:PORT');
    expect(() => parseListen('host:70000')).toThrow('is not HOST:PORT');
  });
});

/** POSTs a body to the watch; the status and parsed answer. */
function post(url: string, path: string, body: string | Buffer): Promise<{ status: number; body: { error?: string; verdict?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString() || '{}') as { error?: string } }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the watch server', () => {
  it('answers bad input clearly: 400 with the reason, 413 oversized, 404 an unknown unit; a report for another unit is not taken', async () => {
    const dir = await tempDir('memu-qa-watch-');
    const keys = join(dir, 'keys');
    const key = (await stationUnit(keys, A)).privateKey;
    await writeJsonDurably(join(keys, 'qa-station.json'), { format: 'memu-qa-station/1', units: [unit(1, A, 'b'), unit(2, B, 'b')] });
    await stationUnit(keys, B);
    const lines: string[] = [];
    let url = '';
    const controller = new AbortController();
    const watching = watchStation({
      keysDir: keys,
      outDir: join(dir, 'out'),
      host: '127.0.0.1',
      port: 0,
      untilDone: false,
      log: pino({ level: 'silent' }),
      view: { ...createWatchJsonLinesView((l) => lines.push(l)), listening: (u) => (url = u) },
      signal: controller.signal,
    });
    while (!url) await new Promise((r) => setTimeout(r, 10));
    const path = `/qa/units/${A}`;

    expect(await post(url, path, 'not json')).toEqual({ status: 400, body: { error: 'not a memu-qa-unit-state/1 message: is not JSON' } });
    expect(await post(url, path, JSON.stringify({ ...testing(), state: 'finished' }))).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^not a memu-qa-unit-state\/1 message: state: /) } });
    expect(await post(url, path, JSON.stringify({ ...testing(), claimCode: B }))).toEqual({ status: 400, body: { error: `the message is for claim code ${B}, but was sent to /qa/units/${A}` } });
    expect((await post(url, path, Buffer.alloc(600 * 1024, 0x20))).status).toBe(413);
    expect(await post(url, '/qa/units/ZZZZ-ZZZZ-ZZZZ-ZZZZ', JSON.stringify({ ...testing(), claimCode: 'ZZZZ-ZZZZ-ZZZZ-ZZZZ' }))).toMatchObject({ status: 404, body: { error: expect.stringContaining('ZZZZ-ZZZZ-ZZZZ-ZZZZ is not a unit this station flashed') } });
    // A's report, signed with A's own key, sent as B's: refused, so it can never become B's record.
    const bytes = Buffer.from(serializeQaReport(pi5Report((r) => (r.claimCode = A))));
    const asB = { format: QA_UNIT_STATE_FORMAT, claimCode: B, state: 'done', report: bytes.toString('base64'), signature: Buffer.from(signQaReport(bytes, key)).toString('base64') };
    expect(await post(url, `/qa/units/${B}`, JSON.stringify(asB))).toEqual({ status: 400, body: { error: `the report names claim code ${A}, but was sent for ${B}` } });
    expect(await post(url, path, JSON.stringify(testing({ step: 'cpu', stepsDone: 1, stepsTotal: 13 })))).toEqual({ status: 200, body: { stage: 'testing' } });

    controller.abort();
    const done = await watching;
    expect(done.ended).toBe('stopped');
    expect(done.exitCode).toBe(2);
    expect(done.records).toBeUndefined();
    expect(lines.map((l) => JSON.parse(l) as { stage: string; claimCode: string })).toEqual([expect.objectContaining({ type: 'unit', claimCode: A, stage: 'testing', step: 'cpu' })]);
  });

  it("a unit's report sent twice is kept once; a second, different report for its claim code rejects both, as the records do", async () => {
    const dir = await tempDir('memu-qa-watch-');
    const keys = join(dir, 'keys');
    const key = (await stationUnit(keys, A)).privateKey;
    await writeJsonDurably(join(keys, 'qa-station.json'), { format: 'memu-qa-station/1', units: [unit(1, A, 'b')] });
    let url = '';
    const controller = new AbortController();
    const watching = watchStation({ keysDir: keys, outDir: join(dir, 'out'), host: '127.0.0.1', port: 0, untilDone: false, log: pino({ level: 'silent' }), view: { listening: (u) => (url = u), changed() {}, close() {} }, signal: controller.signal });
    while (!url) await new Promise((r) => setTimeout(r, 10));
    const done = (serialNumber: string) => {
      const bytes = Buffer.from(serializeQaReport(pi5Report((r) => ((r.claimCode = A), (r.serialNumber = serialNumber)))));
      return JSON.stringify({ format: QA_UNIT_STATE_FORMAT, claimCode: A, state: 'done', report: bytes.toString('base64'), signature: Buffer.from(signQaReport(bytes, key)).toString('base64') });
    };
    const path = `/qa/units/${A}`;
    expect(await post(url, path, done('serial-1'))).toEqual({ status: 200, body: { verdict: 'pass' } });
    // The answer lost on the way back: the unit sends the same report again.
    expect(await post(url, path, done('serial-1'))).toEqual({ status: 200, body: { verdict: 'pass' } });
    const second = await post(url, path, done('serial-1b'));
    expect(second).toMatchObject({ status: 200, body: { verdict: 'rejected', problem: expect.stringContaining(`claim code ${A} is in 2 reports`) } });
    controller.abort();
    const ended = await watching;
    expect(ended.slots).toMatchObject([{ slot: 1, stage: 'rejected', serialNumber: 'serial-1b' }]);
    expect(ended.exitCode).toBe(4);
  });
});
