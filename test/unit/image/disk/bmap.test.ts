import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BmapError, parseBmap } from '../../../../image/disk/bmap.ts';

// Verbatim output of `bmaptool create` 3.6 (Debian bookworm) for a 40000-byte image with
// data in blocks 0, 5 and 9; block 9 is the partial last block (36864..39999).
const realBmap: string = "<?xml version=\"1.0\" ?>\n<!-- This file contains the block map for an image file, which is basically\n     a list of useful (mapped) block numbers in the image file. In other words,\n     it lists only those blocks which contain data (boot sector, partition\n     table, file-system metadata, files, directories, extents, etc). These\n     blocks have to be copied to the target device. The other blocks do not\n     contain any useful data and do not have to be copied to the target\n     device.\n\n     The block map an optimization which allows to copy or flash the image to\n     the image quicker than copying of flashing the entire image. This is\n     because with bmap less data is copied: <MappedBlocksCount> blocks instead\n     of <BlocksCount> blocks.\n\n     Besides the machine-readable data, this file contains useful commentaries\n     which contain human-readable information like image size, percentage of\n     mapped data, etc.\n\n     The 'version' attribute is the block map file format version in the\n     'major.minor' format. The version major number is increased whenever an\n     incompatible block map format change is made. The minor number changes\n     in case of minor backward-compatible changes. -->\n\n<bmap version=\"2.0\">\n    <!-- Image size in bytes: 39.1 KiB -->\n    <ImageSize> 40000 </ImageSize>\n\n    <!-- Size of a block in bytes -->\n    <BlockSize> 4096 </BlockSize>\n\n    <!-- Count of blocks in the image file -->\n    <BlocksCount> 10 </BlocksCount>\n\n    <!-- Count of mapped blocks: 12.0 KiB or 30.0%    -->\n    <MappedBlocksCount> 3  </MappedBlocksCount>\n\n    <!-- Type of checksum used in this file -->\n    <ChecksumType> sha256 </ChecksumType>\n\n    <!-- The checksum of this bmap file. When it is calculated, the value of\n         the checksum has be zero (all ASCII \"0\" symbols).  -->\n    <BmapFileChecksum> d66893ef6ad0d9dc823f6ca3c7cd5b5115e798397596e4c96df3e9454edc311e </BmapFileChecksum>\n\n    <!-- The block map which consists of elements which may either be a\n         range of blocks or a single block. The 'chksum' attribute\n         (if present) is the checksum of this blocks range. -->\n    <BlockMap>\n        <Range chksum=\"0d1473780362f9229a7366ea6234dd0a128b218af175b7cff79b813d98791c4b\"> 0 </Range>\n        <Range chksum=\"0eb43ab65f0762b74415ba4922babd8457238d6d906023e234d173bd7bfb307d\"> 5 </Range>\n        <Range chksum=\"ea0077c22606beb29aed9524aad772b7f25e4a168ef1f5f21f2cb45b78a4e140\"> 9 </Range>\n    </BlockMap>\n</bmap>\n";

/** Re-signs an edited bmap the way bmaptool does, so structural checks are reached. */
function resign(xml: string): string {
  const zeroed = xml.replace(/(<BmapFileChecksum>\s*)[0-9a-f]+/, (_m, open: string) => open + '0'.repeat(64));
  const digest = createHash('sha256').update(zeroed).digest('hex');
  return zeroed.replace(/(<BmapFileChecksum>\s*)0{64}/, (_m, open: string) => open + digest);
}

describe('parseBmap (bmaptool format 2.0)', () => {
  it('reads sizes, ranges and per-range sha256 checksums, with the last partial block cut at the image size', () => {
    const bmap = parseBmap(realBmap);
    expect(bmap.version).toBe('2.0');
    expect(bmap.imageSize).toBe(40000);
    expect(bmap.blockSize).toBe(4096);
    expect(bmap.blocksCount).toBe(10);
    expect(bmap.mappedBlocksCount).toBe(3);
    expect(bmap.checksumType).toBe('sha256');
    expect(bmap.ranges.map((r) => [r.firstBlock, r.lastBlock, r.start, r.length])).toEqual([
      [0, 0, 0, 4096],
      [5, 5, 20480, 4096],
      [9, 9, 36864, 40000 - 36864],
    ]);
    expect(bmap.ranges[0]!.checksum).toBe('0d1473780362f9229a7366ea6234dd0a128b218af175b7cff79b813d98791c4b');
    expect(bmap.mappedBytes).toBe(4096 + 4096 + 3136);
  });

  it('rejects a bmap whose own BmapFileChecksum does not match its content', () => {
    const edited = realBmap.replace('> 5 </Range>', '> 6 </Range>');
    expect(() => parseBmap(edited)).toThrow(/own checksum does not match/);
  });

  it('accepts an edited bmap once re-signed, proving the self-check is computed like bmaptool', () => {
    expect(() => parseBmap(resign(realBmap))).not.toThrow();
    expect(parseBmap(resign(realBmap.replace('> 5 </Range>', '> 6 </Range>'))).ranges[1]!.start).toBe(6 * 4096);
  });

  it('rejects ranges that overlap, run backwards or lie beyond the image', () => {
    expect(() => parseBmap(resign(realBmap.replace('> 5 </Range>', '> 0 </Range>')))).toThrow(/overlaps or precedes/);
    expect(() => parseBmap(resign(realBmap.replace('> 5 </Range>', '> 5-4 </Range>')))).toThrow(/ends before it starts/);
    expect(() => parseBmap(resign(realBmap.replace('> 9 </Range>', '> 10 </Range>')))).toThrow(/beyond the image/);
  });

  it('rejects counts that contradict the ranges or the image size', () => {
    expect(() => parseBmap(resign(realBmap.replace(/<MappedBlocksCount> 3/, '<MappedBlocksCount> 4')))).toThrow(/MappedBlocksCount/);
    expect(() => parseBmap(resign(realBmap.replace('<ImageSize> 40000', '<ImageSize> 50000')))).toThrow(/BlocksCount/);
  });

  it('rejects checksums of the wrong length and unknown versions or checksum types', () => {
    expect(() => parseBmap(resign(realBmap.replace('chksum="0d14', 'chksum="')))).toThrow(/64/);
    expect(() => parseBmap(resign(realBmap.replace('version="2.0"', 'version="3.0"')))).toThrow(/version 3.0/);
    expect(() => parseBmap(resign(realBmap.replace('<ChecksumType> sha256', '<ChecksumType> md5')))).toThrow(/md5/);
  });

  it('rejects things that are not bmaps with a BmapError', () => {
    expect(() => parseBmap('<html></html>')).toThrow(BmapError);
    expect(() => parseBmap(realBmap.replace(/<BlockMap>[\s\S]*<\/BlockMap>/, ''))).toThrow();
  });

  it('reads the older 1.3 format (SHA-1, no ChecksumType)', () => {
    const old = `<?xml version="1.0" ?>
<bmap version="1.3">
    <ImageSize> 8192 </ImageSize>
    <BlockSize> 4096 </BlockSize>
    <BlocksCount> 2 </BlocksCount>
    <MappedBlocksCount> 1 </MappedBlocksCount>
    <BlockMap>
        <Range chksum="${'a'.repeat(40)}"> 1 </Range>
    </BlockMap>
</bmap>`;
    const bmap = parseBmap(old);
    expect(bmap.checksumType).toBe('sha1');
    expect(bmap.ranges[0]).toMatchObject({ start: 4096, length: 4096, checksum: 'a'.repeat(40) });
  });
});
