import { describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../hardware/index.ts';
import { ALIGN_BYTES, computeLayout, sfdiskScript } from '../../../../image/disk/layout.ts';
import { derivedUuid, derivedFatVolumeId } from '../../../../image/disk/ids.ts';
import { fatGeometry } from '../../../../image/disk/fat.ts';
import { growableSectors } from '../../../../agent/storage/grow-data.ts';

const MiB = 1024 * 1024;

describe('disk layout', () => {
  const profile = loadProfile('qemu-amd64');
  const layout = computeLayout(profile, 'seed-1');

  it('places ESP, root A, root B and data in order, 1 MiB aligned, without gaps or overlap', () => {
    expect(layout.partitions.map((p) => p.role)).toEqual(['esp', 'root-a', 'root-b', 'data']);
    let expectedStart = ALIGN_BYTES;
    for (const [i, p] of layout.partitions.entries()) {
      expect(p.number).toBe(i + 1);
      expect(p.startBytes % ALIGN_BYTES).toBe(0);
      expect(p.startBytes).toBe(expectedStart);
      expect(p.sizeBytes).toBe(profile.partitions[i]!.sizeMiB * MiB);
      expectedStart += p.sizeBytes;
    }
    // Room for the backup GPT after the last partition.
    expect(layout.imageSizeBytes).toBe(expectedStart + ALIGN_BYTES);
  });

  it('uses the right GPT partition types (ESP, x86-64 root, generic Linux data)', () => {
    const types = Object.fromEntries(layout.partitions.map((p) => [p.role, p.typeGuid]));
    expect(types.esp).toBe('C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    expect(types['root-a']).toBe('4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709');
    expect(types['root-b']).toBe(types['root-a']);
    expect(types.data).toBe('0FC63DAF-8483-4772-8E79-3D69D8477DE4');
  });

  it('derives every identifier from the seed: same seed, same disk; other seed, other IDs', () => {
    expect(computeLayout(profile, 'seed-1')).toEqual(layout);
    const other = computeLayout(profile, 'seed-2');
    expect(other.diskGuid).not.toBe(layout.diskGuid);
    const ids = [layout.diskGuid, ...layout.partitions.flatMap((p) => [p.partUuid, p.fsUuid])];
    expect(new Set(ids).size).toBe(ids.length);
    expect(derivedUuid('s', 'x')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(derivedFatVolumeId('s', 'x')).toMatch(/^[0-9a-f]{8}$/);
  });

  it('lets the build enlarge one partition (data grows with preloaded images) and shifts nothing before it', () => {
    const bigger = computeLayout(profile, 'seed-1', { data: 4096 });
    expect(bigger.partitions[3]!.sizeBytes).toBe(4096 * MiB);
    expect(bigger.partitions.slice(0, 3)).toEqual(layout.partitions.slice(0, 3));
  });

  it('writes an sfdisk script naming each partition by label, type and fixed UUID', () => {
    const script = sfdiskScript(layout);
    expect(script).toContain('label: gpt');
    expect(script).toContain(`label-id: ${layout.diskGuid.toUpperCase()}`);
    for (const p of layout.partitions) {
      expect(script).toContain(`start=${p.startBytes / 512}, size=${p.sizeBytes / 512}, type=${p.typeGuid}, uuid=${p.partUuid.toUpperCase()}, name="${p.label}"`);
    }
  });

  it('picks FAT32 clusters that keep a 256 MiB ESP above the FAT32 cluster minimum', () => {
    for (const mib of [128, 256, 512, 1024]) {
      const g = fatGeometry(mib * MiB);
      expect(g.fatBits).toBe(32);
      expect((mib * MiB) / 512 / g.sectorsPerCluster).toBeGreaterThan(65525);
    }
    expect(fatGeometry(32 * MiB).fatBits).toBe(16);
  });
});

describe('first-boot growth arithmetic', () => {
  it('grows to the last whole MiB before the backup GPT, and not at all when already there', () => {
    const disk = (8 * 1024 * MiB) / 512;
    const start = 2048;
    const full = Math.floor((disk - 34 + 1) / 2048) * 2048 - start;
    expect(growableSectors({ device: '', disk: '', partitionNumber: 4, startSector: start, sizeSectors: 1000 * 2048, diskSectors: disk })).toBe(full - 1000 * 2048);
    expect(growableSectors({ device: '', disk: '', partitionNumber: 4, startSector: start, sizeSectors: full, diskSectors: disk })).toBe(0);
  });
});
