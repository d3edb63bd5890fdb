import { readdir, readFile, realpath, statfs } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { LayoutPartition } from '../../shared/contracts/disk-layout.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { requireMounted } from './mounts.ts';

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

/**
 * Finds the data partition through the kernel's own view (sysfs: a partition whose
 * PARTNAME is the layout's label, on the same disk as the root filesystem) and reads its
 * geometry there. Not through udev's /dev/disk links: those are re-created, and briefly
 * missing, each time the partition table changes.
 */
export async function readDataPartition(part: LayoutPartition, paths: BlockPaths): Promise<DataPartitionGeometry> {
  const candidates: { name: string; disk: string }[] = [];
  for (const name of await readdir(paths.sysBlockDir)) {
    const uevent = await readFile(join(paths.sysBlockDir, name, 'uevent'), 'utf8').catch(() => '');
    if (!/^DEVTYPE=partition$/m.test(uevent) || !uevent.split('\n').includes(`PARTNAME=${part.label}`)) continue;
    // /sys/class/block/vda4 links to .../block/vda/vda4: the parent directory is the disk.
    candidates.push({ name, disk: basename(dirname(await realpath(join(paths.sysBlockDir, name)))) });
  }
  const rootDisk = await diskOfRoot(paths.sysBlockDir);
  const found = candidates.find((c) => c.disk === rootDisk) ?? (candidates.length === 1 ? candidates[0] : undefined);
  if (!found) {
    const where = candidates.length ? `${candidates.length} partitions are labelled ${part.label}, none on the root disk ${rootDisk ?? '(unknown)'}` : `no partition is labelled ${part.label}`;
    throw new Error(`data partition ${part.label} (PARTUUID ${part.partUuid}) is not present: ${where}`);
  }
  const sysPart = join(paths.sysBlockDir, found.name);
  return {
    device: join(paths.devDir, found.name),
    disk: join(paths.devDir, found.disk),
    partitionNumber: await readNumber(join(sysPart, 'partition')),
    startSector: await readNumber(join(sysPart, 'start')),
    sizeSectors: await readNumber(join(sysPart, 'size')),
    diskSectors: await readNumber(join(paths.sysBlockDir, found.disk, 'size')),
  };
}

/** The disk holding `/`, from the root mount's device number. */
async function diskOfRoot(sysBlockDir: string): Promise<string | undefined> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const root = mountinfo.split('\n').map((l) => l.split(' ')).find((f) => f[4] === '/');
  if (!root?.[2]) return undefined;
  const dev = await realpath(join(sysBlockDir, '..', '..', 'dev', 'block', root[2])).catch(() => undefined);
  return dev ? basename(dirname(dev)) : undefined;
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
  // Checked again after the partition grew: udev drops and re-adds its device meanwhile,
  // which can get it unmounted; resize2fs would then grow it offline while the agent
  // measured and wrote the root filesystem's empty /var/lib/memu.
  await requireMounted(g.device, mountPoint);
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
