import { describe, expect, it } from 'vitest';
import { bmapCandidates, compressionFromName, stripCompressionSuffix } from '../../../../image/flash/compression.ts';

describe('bmap discovery and compression names', () => {
  it("looks for the bmap under memu build's name first, then bmaptool's", () => {
    expect(bmapCandidates('/out/memu-pi5-1.0.img.zst')).toEqual(['/out/memu-pi5-1.0.bmap', '/out/memu-pi5-1.0.img.bmap']);
    expect(bmapCandidates('/out/memu.img.xz')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/memu.img.gz')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/memu.img')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/disk.raw.zst')).toEqual(['/out/disk.raw.bmap']);
  });

  it('names compressions by suffix', () => {
    expect(['a.img', 'a.img.zst', 'a.img.xz', 'a.img.gz', 'A.IMG.ZSTD'].map(compressionFromName)).toEqual(['none', 'zstd', 'xz', 'gzip', 'zstd']);
    expect(stripCompressionSuffix('/out/memu.img.zst')).toBe('/out/memu.img');
  });
});
