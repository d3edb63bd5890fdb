import { describe, expect, it } from 'vitest';
import { advanceSlot, isFinished, slotRate, waitingSlot, type SlotEvent, type SlotState } from '../../../../image/factory-qa/station-slots.ts';

function run(events: SlotEvent[], start: SlotState = waitingSlot(1, '/dev/sdb', 0)): SlotState {
  return events.reduce(advanceSlot, start);
}

describe('station slot stages', () => {
  it('goes waiting, flashing, verifying, preseeding, ready, with its unit on the way', () => {
    const slot = run([
      { kind: 'stage', stage: 'flashing', totalBytes: 1000, at: 0 },
      { kind: 'bytes', bytes: 1000, at: 10 },
      { kind: 'stage', stage: 'verifying', totalBytes: 800, at: 20 },
      { kind: 'bytes', bytes: 400, at: 30 },
      { kind: 'stage', stage: 'preseeding', at: 40 },
      { kind: 'unit', claimCode: '7K3M-Q9XD-2HFT-B8RW', keyId: '0123456789abcdef', at: 41 },
      { kind: 'stage', stage: 'ready', at: 50 },
    ]);
    expect(slot).toMatchObject({ stage: 'ready', claimCode: '7K3M-Q9XD-2HFT-B8RW', keyId: '0123456789abcdef', bytes: 0 });
    // A new stage starts counting afresh and forgets the last stage's total.
    expect(slot.totalBytes).toBeUndefined();
    expect(isFinished(slot)).toBe(true);
  });

  it('goes from flashing straight to preseeding when the read-back is off', () => {
    expect(run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'stage', stage: 'preseeding', at: 1 }]).stage).toBe('preseeding');
  });

  it.each(['waiting', 'flashing', 'verifying', 'preseeding'] as const)('fails from %s with the reason and exit code', (stage) => {
    const path: Record<string, SlotEvent[]> = {
      waiting: [],
      flashing: [{ kind: 'stage', stage: 'flashing', at: 0 }],
      verifying: [{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'stage', stage: 'verifying', at: 1 }],
      preseeding: [{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'stage', stage: 'preseeding', at: 1 }],
    };
    const slot = run([...path[stage]!, { kind: 'failed', reason: 'write error at byte 4096', exitCode: 6, at: 5 }]);
    expect(slot).toMatchObject({ stage: 'failed', reason: 'write error at byte 4096', exitCode: 6 });
  });

  it('never moves a finished slot on: a failed slot cannot become ready, nor fail twice', () => {
    const failed = run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'failed', reason: 'pulled', exitCode: 6, at: 1 }]);
    expect(() => advanceSlot(failed, { kind: 'stage', stage: 'preseeding', at: 2 })).toThrow('cannot go from failed to preseeding');
    expect(() => advanceSlot(failed, { kind: 'failed', reason: 'again', exitCode: 6, at: 2 })).toThrow('already failed');
    const ready = run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'stage', stage: 'preseeding', at: 1 }, { kind: 'stage', stage: 'ready', at: 2 }]);
    expect(() => advanceSlot(ready, { kind: 'failed', reason: 'late', exitCode: 1, at: 3 })).toThrow('already ready');
  });

  it('drops byte counts that arrive after the slot failed (the flasher unwinding)', () => {
    const failed = run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'bytes', bytes: 10, at: 1 }, { kind: 'failed', reason: 'pulled', exitCode: 6, at: 2 }]);
    expect(advanceSlot(failed, { kind: 'bytes', bytes: 99, at: 3 })).toBe(failed);
  });

  it('refuses stages out of order and a unit outside preseeding', () => {
    expect(() => run([{ kind: 'stage', stage: 'verifying', at: 0 }])).toThrow('cannot go from waiting to verifying');
    expect(() => run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'stage', stage: 'ready', at: 1 }])).toThrow('cannot go from flashing to ready');
    expect(() => run([{ kind: 'stage', stage: 'flashing', at: 0 }, { kind: 'unit', claimCode: 'x', keyId: 'y', at: 1 }])).toThrow('while flashing');
  });

  it('gives the rate of the current stage and the time left', () => {
    const slot = run([
      { kind: 'stage', stage: 'flashing', totalBytes: 4000, at: 1000 },
      { kind: 'bytes', bytes: 1000, at: 2000 },
    ]);
    expect(slotRate(slot)).toEqual({ bytesPerSecond: 1000, etaSeconds: 3 });
    expect(slotRate(advanceSlot(slot, { kind: 'bytes', bytes: 4000, at: 3000 }))).toEqual({ bytesPerSecond: 2000 });
  });
});
