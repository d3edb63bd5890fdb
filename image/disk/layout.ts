import { PartitionType, type HardwareProfile, type PartitionSpec } from '../../hardware/profile.ts';
import { DISK_LAYOUT_FORMAT, type DiskLayout, type LayoutPartition } from '../../shared/contracts/disk-layout.ts';
import { derivedFatVolumeId, derivedUuid } from './ids.ts';

export const SECTOR = 512;
/** Partitions start on 1 MiB boundaries: right for SD cards, NVMe and 4K-sector drives. */
export const ALIGN_BYTES = 1024 * 1024;
const MiB = 1024 * 1024;
/** The backup GPT needs 33 sectors at the end; a whole aligned MiB keeps the last partition aligned. */
const GPT_TAIL_BYTES = ALIGN_BYTES;

function typeGuidFor(profile: HardwareProfile, p: PartitionSpec): string {
  switch (p.role) {
    case 'esp':
      return PartitionType.esp;
    case 'bootconfig':
    case 'boot-a':
    case 'boot-b':
      return PartitionType.fatData;
    case 'root-a':
    case 'root-b':
      return profile.arch === 'amd64' ? PartitionType.rootX86_64 : PartitionType.rootArm64;
    case 'data':
      return PartitionType.linuxData;
  }
}

/**
 * Places the profile's partitions on the disk, 1 MiB aligned, in profile order, with
 * identifiers derived from `seed`. `sizeOverridesMiB` lets the build enlarge a partition
 * (the data partition grows with preloaded images) without touching the profile.
 */
export function computeLayout(
  profile: HardwareProfile,
  seed: string,
  sizeOverridesMiB: Partial<Record<PartitionSpec['role'], number>> = {},
): DiskLayout {
  let offset = ALIGN_BYTES;
  const partitions: LayoutPartition[] = profile.partitions.map((p, i) => {
    const sizeBytes = (sizeOverridesMiB[p.role] ?? p.sizeMiB) * MiB;
    const part: LayoutPartition = {
      number: i + 1,
      role: p.role,
      label: p.label,
      partUuid: derivedUuid(seed, `partition:${p.role}`),
      typeGuid: typeGuidFor(profile, p),
      filesystem: p.filesystem,
      fsUuid: p.filesystem === 'ext4' ? derivedUuid(seed, `fs:${p.role}`) : formatFatId(derivedFatVolumeId(seed, `fs:${p.role}`)),
      startBytes: offset,
      sizeBytes,
    };
    offset += sizeBytes;
    return part;
  });
  return {
    format: DISK_LAYOUT_FORMAT,
    profile: profile.name,
    diskGuid: derivedUuid(seed, 'disk'),
    sectorSize: SECTOR,
    imageSizeBytes: offset + GPT_TAIL_BYTES,
    partitions,
  };
}

/** FAT volume IDs appear as XXXX-XXXX under /dev/disk/by-uuid. */
function formatFatId(hex8: string): string {
  return `${hex8.slice(0, 4)}-${hex8.slice(4)}`.toUpperCase();
}

export function partitionByRole(layout: DiskLayout, role: LayoutPartition['role']): LayoutPartition {
  const p = layout.partitions.find((x) => x.role === role);
  if (!p) throw new Error(`layout of ${layout.profile} has no ${role} partition`);
  return p;
}

/** The sfdisk script that writes this layout's GPT. */
export function sfdiskScript(layout: DiskLayout): string {
  const lines = [
    'label: gpt',
    `label-id: ${layout.diskGuid.toUpperCase()}`,
    'unit: sectors',
    `first-lba: ${ALIGN_BYTES / SECTOR}`,
    `sector-size: ${SECTOR}`,
    '',
  ];
  for (const p of layout.partitions) {
    lines.push(
      `start=${p.startBytes / SECTOR}, size=${p.sizeBytes / SECTOR}, type=${p.typeGuid}, uuid=${p.partUuid.toUpperCase()}, name="${p.label}"`,
    );
  }
  return `${lines.join('\n')}\n`;
}
