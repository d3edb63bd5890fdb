import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { advanceSlot, waitingSlot, type SlotState } from '../../../../image/factory-qa/station-slots.ts';
import { benchSummary, createJsonLinesView, createLogView, createTerminalView, renderStationTable } from '../../../../image/factory-qa/station-view.ts';

const MiB = 1024 * 1024;

/** A bench of three: one flashing a quarter in, one ready with its unit, one whose drive was pulled. */
function bench(): SlotState[] {
  const flashing = advanceSlot(advanceSlot(waitingSlot(1, '/dev/sdb', 0), { kind: 'stage', stage: 'flashing', totalBytes: 400 * MiB, at: 0 }), { kind: 'bytes', bytes: 100 * MiB, at: 2000 });
  let ready = advanceSlot(waitingSlot(2, '/dev/sdc', 0), { kind: 'stage', stage: 'flashing', at: 0 });
  ready = advanceSlot(ready, { kind: 'stage', stage: 'preseeding', at: 1 });
  ready = advanceSlot(ready, { kind: 'unit', claimCode: '7K3M-Q9XD-2HFT-B8RW', keyId: '0123456789abcdef', at: 2 });
  ready = advanceSlot(ready, { kind: 'stage', stage: 'ready', at: 3 });
  const failed = advanceSlot(advanceSlot(waitingSlot(3, '/dev/sdd', 0), { kind: 'stage', stage: 'flashing', at: 0 }), { kind: 'failed', reason: 'write error on /dev/sdd at byte 1048576: EIO', exitCode: 6, at: 5 });
  return [flashing, ready, failed];
}

describe('the bench table', () => {
  it('shows per slot its stage, bytes with percentage, rate and ETA, the claim code when ready and the reason when failed', () => {
    const lines = renderStationTable(bench());
    expect(lines[0]).toMatch(/^slot +target +stage +bytes +rate +ETA +unit \/ reason$/);
    expect(lines[1]).toMatch(/^1 +\/dev\/sdb +flashing +100\.0 MiB \/ 400\.0 MiB \(25%\) +50\.0 MiB\/s +6s$/);
    expect(lines[2]).toMatch(/^2 +\/dev\/sdc +ready +claim code 7K3M-Q9XD-2HFT-B8RW$/);
    expect(lines[3]).toMatch(/^3 +\/dev\/sdd +FAILED +write error on \/dev\/sdd at byte 1048576: EIO$/);
    expect(benchSummary(bench())).toBe('1 ready, 1 failed (slot 3)');
  });

  it('cuts lines to the terminal width so none wraps', () => {
    const lines = renderStationTable(bench(), { columns: 60 });
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(60);
    expect(lines[3]!.endsWith('…')).toBe(true);
  });

  it('keeps its columns where they are while numbers grow, when redrawn', () => {
    const early = renderStationTable([advanceSlot(waitingSlot(1, '/dev/sdb', 0), { kind: 'stage', stage: 'flashing', totalBytes: 400 * MiB, at: 0 })], { steady: true });
    const later = renderStationTable(bench().slice(0, 1), { steady: true });
    expect(early[0]).toBe(later[0]);
  });
});

describe('the terminal view', () => {
  afterEach(() => vi.useRealTimers());

  it('redraws the table in place: back up over the last frame, each line cleared', () => {
    vi.useFakeTimers();
    let slots = bench().slice(0, 2);
    const written: string[] = [];
    const view = createTerminalView(() => slots, { write: (t) => written.push(t), columns: 200 }, 250);
    view.changed(slots[0]!, 'stage');
    expect(written).toHaveLength(1);
    expect(written[0]!.startsWith('\r\x1b[2Kslot')).toBe(true);
    expect(written[0]!.split('\n')).toHaveLength(4); // header, two slots, and the end of the last line
    // Bytes alone are drawn at most every interval.
    slots = [advanceSlot(slots[0]!, { kind: 'bytes', bytes: 200 * MiB, at: 3000 }), slots[1]!];
    view.changed(slots[0]!, 'bytes');
    view.changed(slots[0]!, 'bytes');
    expect(written).toHaveLength(1);
    vi.advanceTimersByTime(250);
    expect(written).toHaveLength(2);
    expect(written[1]!.startsWith('\x1b[3A')).toBe(true);
    expect(written[1]).toContain('200.0 MiB / 400.0 MiB (50%)');
    view.close();
    expect(written).toHaveLength(3);
  });
});

describe('the --json view', () => {
  it("prints the flasher's progress lines with the slot, and a slot line at every stage", () => {
    const lines: string[] = [];
    const view = createJsonLinesView((l) => lines.push(l));
    const [slot] = bench();
    const progress = view.flashProgress(slot!)!;
    progress.stage('write', 400 * MiB);
    view.changed(slot!, 'stage');
    view.changed(slot!, 'bytes');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[0]).toMatchObject({ type: 'progress', event: 'start', stage: 'write', bytes: 0, totalBytes: 400 * MiB, slot: 1, target: '/dev/sdb' });
    expect(parsed[1]).toEqual({ type: 'slot', slot: 1, target: '/dev/sdb', stage: 'flashing' });
    expect(parsed).toHaveLength(2);
    const failed = bench()[2]!;
    view.changed(failed, 'stage');
    expect(JSON.parse(lines[2]!)).toEqual({ type: 'slot', slot: 3, target: '/dev/sdd', stage: 'failed', reason: 'write error on /dev/sdd at byte 1048576: EIO', exitCode: 6 });
  });
});

describe('the log view', () => {
  it('logs each stage through the host logger, a failed slot as an error with its reason', () => {
    const records: Record<string, unknown>[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (records.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) });
    const log = pino({ level: 'info' }, sink);
    const view = createLogView(log);
    const [flashing, ready, failed] = bench();
    view.changed(flashing!, 'bytes');
    view.changed(ready!, 'stage');
    view.changed(failed!, 'stage');
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ level: 30, slot: 2, stage: 'ready', claimCode: '7K3M-Q9XD-2HFT-B8RW', msg: 'slot 2 (/dev/sdc) ready' });
    expect(records[1]).toMatchObject({ level: 50, slot: 3, stage: 'failed', exitCode: 6, msg: 'slot 3 (/dev/sdd) failed: write error on /dev/sdd at byte 1048576: EIO' });
  });
});
