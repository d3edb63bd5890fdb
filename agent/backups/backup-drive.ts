import { mkdir, readlink, realpath } from 'node:fs/promises';
import { join, resolve, dirname } from 'node:path';
import type { Logger } from 'pino';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import { isNotFound } from '../../shared/errors.ts';
import { BackupError } from './backup-errors.ts';

/**
 * The family's USB backup drive: any filesystem labelled MEMU-BACKUP, found through
 * udev's /dev/disk/by-label and mounted by the agent at /run/memu/backup-drive. A drive
 * is made one only when the admin names it and confirms (prepareBackupDrive), and never
 * when any of its partitions is mounted: the box never formats a drive on its own.
 */

export const BACKUP_DRIVE_LABEL = 'MEMU-BACKUP';

export interface BackupDriveRoots {
  /** udev's links by filesystem label; tests give a directory of their own links. */
  byLabelDir: string;
  /** Where the drive is mounted. */
  mountPoint: string;
}

export const DEVICE_DRIVE_ROOTS: BackupDriveRoots = { byLabelDir: '/dev/disk/by-label', mountPoint: '/run/memu/backup-drive' };

export class BackupDriveMissingError extends BackupError {
  constructor() {
    super(
      'repository-unreachable',
      `No USB backup drive is plugged in (no drive labelled ${BACKUP_DRIVE_LABEL}).`,
      "Plug the family's backup drive into the box. A new drive must first be prepared on the Backups page. Earlier backups are intact.",
    );
  }
}

/** The block device labelled MEMU-BACKUP, or undefined when none is plugged in. */
export async function findBackupDrive(roots: BackupDriveRoots): Promise<string | undefined> {
  const link = join(roots.byLabelDir, BACKUP_DRIVE_LABEL);
  try {
    const target = await readlink(link).catch(() => link);
    return await realpath(resolve(dirname(link), target));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

interface FindmntEntry {
  source?: string;
  target?: string;
}

/** What findmnt --json says is mounted at a mount point (its first entry), if anything. */
export function parseFindmnt(json: string): FindmntEntry | undefined {
  if (json.trim() === '') return undefined;
  const parsed = JSON.parse(json) as { filesystems?: FindmntEntry[] };
  return parsed.filesystems?.[0];
}

/**
 * Mounts the backup drive at the mount point (nothing executable or device-like on it is
 * honoured) and returns the mount point; does nothing when it is already mounted there.
 * Refuses when something else is mounted there.
 */
export async function mountBackupDrive(roots: BackupDriveRoots, log: Logger): Promise<string> {
  const device = await findBackupDrive(roots);
  if (!device) throw new BackupDriveMissingError();
  const probe = await runCommandOutcome('findmnt', ['--json', '--output', 'SOURCE,TARGET', '--mountpoint', roots.mountPoint]);
  const mounted = probe.code === 0 ? parseFindmnt(probe.stdout) : undefined;
  if (mounted?.source) {
    const source = await realpath(mounted.source).catch(() => mounted.source!);
    if (source === device || mounted.source === device) return roots.mountPoint;
    throw new BackupError(
      'repository-unreachable',
      `${roots.mountPoint} holds ${mounted.source}, not the backup drive ${device}.`,
      `Unmount ${roots.mountPoint} (umount ${roots.mountPoint}) and back up again. Earlier backups are intact.`,
    );
  }
  await mkdir(roots.mountPoint, { recursive: true, mode: 0o700 });
  await runCommand('mount', ['-o', 'nosuid,nodev,noexec,noatime', device, roots.mountPoint]);
  log.info({ device, mountPoint: roots.mountPoint }, 'backup drive mounted');
  return roots.mountPoint;
}

/** Unmounts the drive after a run, so it can be unplugged; a drive still busy stays mounted until the next run. */
export async function unmountBackupDrive(roots: BackupDriveRoots, log: Logger): Promise<void> {
  const probe = await runCommandOutcome('findmnt', ['--json', '--output', 'SOURCE,TARGET', '--mountpoint', roots.mountPoint]);
  if (probe.code !== 0 || !parseFindmnt(probe.stdout)) return;
  const r = await runCommandOutcome('umount', [roots.mountPoint]);
  if (r.code !== 0) log.warn({ mountPoint: roots.mountPoint, stderr: r.stderr.trim() }, 'the backup drive could not be unmounted');
}

interface LsblkDevice {
  path?: string;
  name?: string;
  type?: string;
  mountpoints?: (string | null)[];
  mountpoint?: string | null;
  children?: LsblkDevice[];
}

/**
 * Why `disk` must not be formatted, from `lsblk --json --output PATH,TYPE,MOUNTPOINTS`
 * of it; undefined when it may be. Only a whole disk that is not mounted anywhere (none of
 * its partitions either) is offered: that rules out the system drive and any drive in use.
 */
export function whyNotPreparable(lsblkJson: string, disk: string): string | undefined {
  const devices = (JSON.parse(lsblkJson) as { blockdevices?: LsblkDevice[] }).blockdevices ?? [];
  const device = devices.find((d) => d.path === disk);
  if (!device) return `${disk} is not a drive this box can see`;
  if (device.type !== 'disk') return `${disk} is a ${device.type ?? 'device'}, not a whole drive; name the drive itself (like /dev/sda)`;
  const mounted: string[] = [];
  const walk = (d: LsblkDevice) => {
    for (const m of [...(d.mountpoints ?? []), d.mountpoint ?? null]) if (m) mounted.push(`${d.path ?? d.name} at ${m}`);
    d.children?.forEach(walk);
  };
  walk(device);
  if (mounted.length > 0) return `${disk} is in use (${[...new Set(mounted)].join(', ')}); it is not offered for formatting`;
  return undefined;
}

/**
 * Formats the named drive as ext4 labelled MEMU-BACKUP. Everything on it is lost: only
 * after the admin confirmed, and only for a drive whyNotPreparable accepts.
 */
export async function prepareBackupDrive(disk: string, log: Logger): Promise<void> {
  if (!/^\/dev\/[a-z0-9]+$/.test(disk)) throw new Error(`${JSON.stringify(disk)} is not a drive's name (like /dev/sda)`);
  const listing = await runCommand('lsblk', ['--json', '--output', 'PATH,NAME,TYPE,MOUNTPOINTS', disk]);
  const refusal = whyNotPreparable(listing.stdout, disk);
  if (refusal) throw new Error(`The drive was not formatted: ${refusal}.`);
  log.warn({ disk }, 'formatting a drive as the backup drive, as the admin confirmed');
  await runCommand('wipefs', ['--all', disk]);
  await runCommand('mkfs.ext4', ['-F', '-q', '-L', BACKUP_DRIVE_LABEL, '-m', '0', disk]);
  await runCommandOutcome('udevadm', ['settle', '--timeout=10']);
}
