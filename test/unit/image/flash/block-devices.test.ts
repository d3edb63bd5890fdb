import { describe, expect, it } from 'vitest';
import { refusalFor, type BlockDevice } from '../../../../image/flash/block-devices.ts';
import { bmapCandidates, compressionFromName } from '../../../../image/flash/compression.ts';
import { nonZeroRuns } from '../../../../image/flash/write-engine.ts';

const GiB = 1024 ** 3;

function drive(overrides: Partial<BlockDevice> = {}): BlockDevice {
  return {
    path: '/dev/sdb',
    name: 'sdb',
    type: 'disk',
    sizeBytes: 32 * GiB,
    model: 'Ultra Fit',
    serial: '4C530001',
    transport: 'usb',
    removable: true,
    readOnly: false,
    partitions: [],
    mountpoints: [],
    system: false,
    refusalClearedByUnmount: false,
    ...overrides,
  };
}

describe('refusalFor: which drives memu flash refuses', () => {
  it('allows an unmounted whole drive large enough for the image', () => {
    expect(refusalFor({ device: drive() }, { imageSize: 4 * GiB })).toBeUndefined();
  });

  it('refuses the drive holding the running system, even with --unmount', () => {
    const system = drive({ system: true, refusal: 'holds the running system (/ or /boot)', mountpoints: ['/'] });
    expect(refusalFor({ device: system }, { imageSize: GiB, unmount: true })?.reason).toMatch(/running system/);
  });

  it('refuses a drive with mounted partitions unless --unmount', () => {
    const mounted = drive({ mountpoints: ['/media/card'], refusal: 'has mounted filesystems (/media/card)', refusalClearedByUnmount: true });
    const refused = refusalFor({ device: mounted }, { imageSize: GiB });
    expect(refused?.reason).toMatch(/mounted/);
    expect(refused?.hint).toMatch(/--unmount/);
    expect(refusalFor({ device: mounted }, { imageSize: GiB, unmount: true })).toBeUndefined();
  });

  it('refuses a drive in use by LVM/RAID even with --unmount', () => {
    const held = drive({ refusal: 'is in use by lvm (vg-data)', refusalClearedByUnmount: false });
    expect(refusalFor({ device: held }, { imageSize: GiB, unmount: true })?.reason).toMatch(/lvm/);
  });

  it('refuses a drive smaller than the image, naming both sizes', () => {
    const small = drive({ sizeBytes: 2 * GiB });
    expect(refusalFor({ device: small }, { imageSize: 4 * GiB })?.reason).toMatch(new RegExp(`${2 * GiB} bytes.*${4 * GiB}`));
  });

  it('refuses a partition unless --allow-partition, and never one on the system drive', () => {
    const part = drive({ path: '/dev/sdb1', name: 'sdb1', type: 'part', sizeBytes: 8 * GiB });
    expect(refusalFor({ device: part, partitionOf: drive() }, { imageSize: GiB })?.reason).toMatch(/partition, not a whole drive/);
    expect(refusalFor({ device: part, partitionOf: drive() }, { imageSize: GiB, allowPartition: true })).toBeUndefined();
    const systemDisk = drive({ path: '/dev/sda', system: true });
    expect(refusalFor({ device: { ...part, path: '/dev/sda3' }, partitionOf: systemDisk }, { imageSize: GiB, allowPartition: true })?.reason).toMatch(/running system/);
  });

  it('refuses read-only drives', () => {
    expect(refusalFor({ device: drive({ readOnly: true, refusal: 'is read-only (write-protect switch?)' }) }, { imageSize: GiB })?.reason).toMatch(/read-only/);
  });
});

describe('bmap discovery and compression names', () => {
  it("looks for the bmap under memu build's name first, then bmaptool's", () => {
    expect(bmapCandidates('/out/memu-pi5-1.0.img.zst')).toEqual(['/out/memu-pi5-1.0.bmap', '/out/memu-pi5-1.0.img.bmap']);
    expect(bmapCandidates('/out/memu.img.xz')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/memu.img.gz')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/memu.img')).toEqual(['/out/memu.bmap', '/out/memu.img.bmap']);
    expect(bmapCandidates('/out/disk.raw.zst')).toEqual(['/out/disk.raw.bmap']);
  });

  it('names compressions by suffix', () => {
    expect(['a.img', 'a.img.zst', 'a.img.xz', 'a.img.gz'].map(compressionFromName)).toEqual(['none', 'zstd', 'xz', 'gzip']);
  });
});

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
