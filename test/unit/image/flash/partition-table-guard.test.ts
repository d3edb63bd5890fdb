import { describe, expect, it } from 'vitest';
import { heldBackRanges, HeldBackWrites, partitionTableRegionBytes, rangesToClear } from '../../../../image/flash/partition-table-guard.ts';

const MiB = 1024 * 1024;

describe('the partition-table regions', () => {
  it('holds back the image’s first and last MiB (MBR + primary GPT, backup GPT)', () => {
    expect(partitionTableRegionBytes).toBe(MiB);
    expect(heldBackRanges(256 * MiB)).toEqual([
      { start: 0, length: MiB },
      { start: 255 * MiB, length: MiB },
    ]);
  });

  it('holds back one region for an image under 2 MiB, and only the first MiB when the size is unknown', () => {
    expect(heldBackRanges(MiB + 4096)).toEqual([{ start: 0, length: MiB + 4096 }]);
    expect(heldBackRanges(4096)).toEqual([{ start: 0, length: 4096 }]);
    expect(heldBackRanges(undefined)).toEqual([{ start: 0, length: MiB }]);
  });

  it("clears the drive's first and last MiB and the place the image's backup GPT goes", () => {
    expect(rangesToClear(300 * MiB, 256 * MiB)).toEqual([
      { start: 0, length: MiB },
      { start: 255 * MiB, length: MiB },
      { start: 299 * MiB, length: MiB },
    ]);
    // Image and drive of one size: the two end regions are one.
    expect(rangesToClear(16 * MiB, 16 * MiB)).toEqual([
      { start: 0, length: MiB },
      { start: 15 * MiB, length: MiB },
    ]);
    expect(rangesToClear(MiB / 2, undefined)).toEqual([{ start: 0, length: MiB / 2 }]);
  });
});

describe('HeldBackWrites', () => {
  const ranges = [
    { start: 0, length: MiB },
    { start: 15 * MiB, length: MiB },
  ];

  it('passes writes outside the regions through untouched and keeps nothing', () => {
    const held = new HeldBackWrites(ranges);
    const pieces = [{ bufferOffset: 0, length: 4096, position: 2 * MiB }];
    expect(held.divert(Buffer.alloc(4096), pieces)).toEqual(pieces);
    expect(held.takeHeld()).toEqual([]);
  });

  it('splits a write that crosses a region edge: the inside part is kept (copied), the rest written now', () => {
    const held = new HeldBackWrites(ranges);
    const view = Buffer.alloc(3 * 4096);
    view.fill(1, 0, 4096);
    view.fill(2, 4096, 8192);
    view.fill(3, 8192);
    // Bytes MiB-8192 .. MiB+4096: two blocks inside the first region, one after it.
    const now = held.divert(view, [{ bufferOffset: 0, length: view.length, position: MiB - 8192 }]);
    expect(now).toEqual([{ bufferOffset: 8192, length: 4096, position: MiB }]);
    view.fill(9); // the buffer is reused: what was held must be a copy
    const kept = held.takeHeld();
    expect(kept.map((k) => ({ position: k.position, length: k.data.length }))).toEqual([{ position: MiB - 8192, length: 8192 }]);
    expect([...new Set(kept[0]!.data.subarray(0, 4096))]).toEqual([1]);
    expect([...new Set(kept[0]!.data.subarray(4096))]).toEqual([2]);
    expect(held.takeHeld()).toEqual([]);
  });

  it('keeps only what was written into a region, as separate writes where there are gaps', () => {
    const held = new HeldBackWrites(ranges);
    const view = Buffer.alloc(4096, 7);
    expect(held.divert(view, [{ bufferOffset: 0, length: 512, position: 0 }])).toEqual([]);
    expect(held.divert(view, [{ bufferOffset: 0, length: 4096, position: 16 * MiB - 4096 }])).toEqual([]);
    expect(held.divert(view, [{ bufferOffset: 512, length: 512, position: 512 }])).toEqual([]);
    const kept = held.takeHeld().map((k) => ({ position: k.position, length: k.data.length }));
    expect(kept).toEqual([
      { position: 0, length: 1024 },
      { position: 16 * MiB - 4096, length: 4096 },
    ]);
  });
});
