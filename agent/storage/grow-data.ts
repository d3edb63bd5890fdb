import { readFile, realpath, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { LayoutPartition } from '../contracts/disk-layout.ts';
import { runCommand } from '../run-command.ts';

/**
 * First-boot growth of the data partition and its ext4 filesystem to fill the drive.
 * Both steps read the current sizes and do nothing when there is nothing to do, so they
 * are safe to repeat after a power cut at any point. Growth is online: the filesystem
 * stays mounted (resize2fs grows mounted ext4), so nothing else has to wait or unmount.
 */
const SECTOR = 512;
const ALIGN_SECTORS = 2048; // 1 MiB
/** The backup GPT occupies the last 33 sectors of the disk. */
const GPT_BACKUP_SECTORS = 33;

export interface DataPartitionGeometry {
  device: string;
  disk: string;
  partitionNumber: number;
  startSector: number;
  sizeSectors: number;
  diskSectors: number;
}

export interface BlockPaths {
  sysBlockDir: string;
  devDir: string;
}

async function readNumber(path: string): Promise<number> {
  return Number((await readFile(path, 'utf8')).trim());
}

/** Finds the data partition by its PARTUUID and reads its geometry from sysfs. */
export async function readDataPartition(part: LayoutPartition, paths: BlockPaths): Promise<DataPartitionGeometry> {
  const link = join(paths.devDir, 'disk', 'by-partuuid', part.partUuid.toLowerCase());
  // udev recreates the link after a partition changes; give it a moment before giving up.
  let device: string | undefined;
  for (let attempt = 0; attempt < 30 && !device; attempt++) {
    device = await realpath(link).catch(() => undefined);
    if (!device) await new Promise((r) => setTimeout(r, 1000));
  }
  if (!device) throw new Error(`data partition ${part.label} (PARTUUID ${part.partUuid}) is not present: ${link} does not exist`);
  const name = basename(device);
  const sysPart = join(paths.sysBlockDir, name);
  // /sys/class/block/vda4 links to .../block/vda/vda4: the parent directory is the disk.
  const diskName = basename(dirname(await realpath(sysPart)));
  return {
    device,
    disk: join(paths.devDir, diskName),
    partitionNumber: await readNumber(join(sysPart, 'partition')),
    startSector: await readNumber(join(sysPart, 'start')),
    sizeSectors: await readNumber(join(sysPart, 'size')),
    diskSectors: await readNumber(join(paths.sysBlockDir, diskName, 'size')),
  };
}

/** Sectors the partition could still gain: up to the last whole MiB before the backup GPT. */
export function growableSectors(g: DataPartitionGeometry): number {
  const lastUsable = g.diskSectors - GPT_BACKUP_SECTORS - 1;
  const alignedEnd = Math.floor((lastUsable + 1) / ALIGN_SECTORS) * ALIGN_SECTORS;
  return Math.max(0, alignedEnd - (g.startSector + g.sizeSectors));
}

export async function growDataPartition(part: LayoutPartition, paths: BlockPaths, log: Logger): Promise<void> {
  const g = await readDataPartition(part, paths);
  const gain = growableSectors(g);
  if (gain < ALIGN_SECTORS) {
    log.info({ device: g.device, sizeBytes: g.sizeSectors * SECTOR }, 'data partition already fills the drive');
    return;
  }
  log.info({ device: g.device, fromBytes: g.sizeSectors * SECTOR, gainBytes: gain * SECTOR }, 'growing data partition');
  // The image's backup GPT sits where the image ended; move it to the real end first.
  await runCommand('sfdisk', ['--relocate', 'gpt-bak-std', g.disk]);
  // ", +" keeps the start and takes all free space after it. The disk is in use (root is
  // on it), so the kernel is told about the one changed partition with partx instead of
  // re-reading the whole table.
  await runCommand('sfdisk', ['--no-reread', '--no-tell-kernel', '-N', String(g.partitionNumber), g.disk], { input: ', +\n' });
  await runCommand('partx', ['--update', '--nr', String(g.partitionNumber), g.disk]);
  await runCommand('udevadm', ['settle', '--timeout=30']).catch(() => undefined);
  const after = await readDataPartition(part, paths);
  log.info({ device: g.device, sizeBytes: after.sizeSectors * SECTOR }, 'data partition grown');
}

export async function growDataFilesystem(part: LayoutPartition, paths: BlockPaths, mountPoint: string, log: Logger): Promise<void> {
  const g = await readDataPartition(part, paths);
  const fs = await statfs(mountPoint);
  const fsBytes = fs.blocks * fs.bsize;
  const partBytes = g.sizeSectors * SECTOR;
  // statfs excludes ext4 metadata overhead (a few %), so compare with slack.
  if (fsBytes > partBytes * 0.9) {
    log.info({ device: g.device, fsBytes, partBytes }, 'data filesystem already fills its partition');
    return;
  }
  log.info({ device: g.device, fsBytes, partBytes }, 'growing data filesystem (online)');
  await runCommand('resize2fs', [g.device]);
  const grown = await statfs(mountPoint);
  log.info({ device: g.device, fsBytes: grown.blocks * grown.bsize }, 'data filesystem grown');
}
