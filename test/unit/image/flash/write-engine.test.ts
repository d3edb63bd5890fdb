import { describe, expect, it } from 'vitest';
import { nonZeroRuns } from '../../../../image/flash/write-engine.ts';

describe('nonZeroRuns: skipping zero blocks without a bmap', () => {
  const zeros = Buffer.alloc(64 * 1024);

  it('finds nothing in an all-zero buffer', () => {
    expect(nonZeroRuns(Buffer.alloc(64 * 1024), 64 * 1024, zeros)).toEqual([]);
  });

  it('returns whole 4 KiB blocks that hold any non-zero byte, merged when adjacent', () => {
    const buf = Buffer.alloc(64 * 1024);
    buf[5] = 1; // block 0
    buf[4096 + 4095] = 1; // block 1 (adjacent: merged with block 0)
    buf[5 * 4096 + 100] = 7; // block 5
    expect(nonZeroRuns(buf, buf.length, zeros)).toEqual([
      [0, 8192],
      [5 * 4096, 4096],
    ]);
  });

  it('keeps a partial last block', () => {
    const buf = Buffer.alloc(10000);
    buf[9999] = 1;
    expect(nonZeroRuns(buf, 10000, zeros)).toEqual([[8192, 10000 - 8192]]);
  });
});
