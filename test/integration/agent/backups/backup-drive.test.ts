import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupService } from '../../../../agent/backups/index.ts';
import { createFamilyFiles, requireBackupPrerequisites, testBackupService } from './backup-fixtures.ts';

/**
 * The USB backup drive, real: an ext4 filesystem labelled MEMU-BACKUP on a loop device
 * (what a USB stick is to the kernel), found through a by-label directory of the test's
 * own (udev does not run here), mounted by the agent with mount(8) for the run and
 * unmounted after it; and the reason the family reads when it is not plugged in.
 */
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
let work: string;
let loop: string | undefined;
let service: BackupService;
let mountPoint: string;
let byLabelDir: string;

const mounted = () => execFileSync('findmnt', ['--noheadings', '--output', 'SOURCE', '--mountpoint', mountPoint], { encoding: 'utf8' }).trim();
const findmntOrEmpty = () => {
  try {
    return mounted();
  } catch {
    return '';
  }
};

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-backup-drive-'));
  const image = join(work, 'usb.img');
  execFileSync('truncate', ['-s', '96M', image]);
  loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'MEMU-BACKUP', loop]);
  byLabelDir = join(work, 'by-label');
  mountPoint = join(work, 'run', 'backup-drive');
  await mkdir(byLabelDir);
  await symlink(loop, join(byLabelDir, 'MEMU-BACKUP'));
  const dataDir = join(work, 'data');
  await createFamilyFiles(dataDir, 10);
  service = testBackupService(dataDir, log, { driveRoots: { byLabelDir, mountPoint } });
  await service.start();
}, 60_000);

afterAll(async () => {
  await service?.stop();
  if (mountPoint && findmntOrEmpty()) execFileSync('umount', [mountPoint]);
  if (loop) execFileSync('losetup', ['--detach', loop]);
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the USB backup drive', () => {
  it('is mounted for a backup by its label, holds the repository, and is unmounted after, so it can be unplugged', async () => {
    const target = await service.addTarget({ kind: 'usb-drive' });
    await service.runNow('admin').done;
    const status = await service.status();
    expect(status.targets[0]).toMatchObject({ label: 'USB drive', address: 'the USB drive labelled MEMU-BACKUP (folder memu-backups)' });
    expect(status.targets[0]!.lastFailure).toBeUndefined();
    expect(status.targets[0]!.lastSuccess!.filesProcessed).toBeGreaterThan(10);
    expect(findmntOrEmpty()).toBe('');
    // Opening it again mounts it, and the repository is on the drive itself.
    const repository = await service.repository(target.id);
    expect(mounted()).toBe(loop);
    expect(existsSync(join(mountPoint, 'memu-backups', 'config'))).toBe(true);
    expect((await repository.listSets()).filter((s) => s.complete)).toHaveLength(1);
    execFileSync('umount', [mountPoint]);
  }, 60_000);

  it('not plugged in: the run says so and what to do; with a recent good backup that is not yet a health reason', async () => {
    await unlink(join(byLabelDir, 'MEMU-BACKUP'));
    await service.runNow('admin').done;
    const t = (await service.status()).targets[0]!;
    expect(t.lastFailure).toMatchObject({
      reason: 'repository-unreachable',
      message:
        "No USB backup drive is plugged in (no drive labelled MEMU-BACKUP). Plug the family's backup drive into the box. A new drive must first be prepared on the Backups page. Earlier backups are intact.",
    });
    // The last good backup is minutes old: not yet a health reason.
    expect((await service.health.report()).reasons).toEqual([]);
  }, 60_000);
});
