import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findBackupDrive, parseFindmnt, whyNotPreparable } from '../../../../agent/backups/backup-drive.ts';
import { dockerExecArgs, postgresContainerRestores } from '../../../../agent/backups/postgres-dumps.ts';
import { checkRestoreFolderName } from '../../../../agent/backups/backup-service.ts';

// lsblk --json --output PATH,NAME,TYPE,MOUNTPOINTS, as util-linux 2.38+ prints it.
const lsblk = (devices: unknown[]) => JSON.stringify({ blockdevices: devices });
const usb = { path: '/dev/sdb', name: 'sdb', type: 'disk', mountpoints: [null], children: [{ path: '/dev/sdb1', name: 'sdb1', type: 'part', mountpoints: [null] }] };

describe('preparing a USB drive', () => {
  it('offers a whole drive that nothing has mounted', () => {
    expect(whyNotPreparable(lsblk([usb]), '/dev/sdb')).toBeUndefined();
  });

  it('refuses the system drive, a drive with any mounted partition, a partition, and an unknown name', () => {
    const system = { path: '/dev/nvme0n1', name: 'nvme0n1', type: 'disk', mountpoints: [null], children: [{ path: '/dev/nvme0n1p4', type: 'part', mountpoints: ['/var/lib/memu'] }] };
    expect(whyNotPreparable(lsblk([system]), '/dev/nvme0n1')).toBe('/dev/nvme0n1 is in use (/dev/nvme0n1p4 at /var/lib/memu); it is not offered for formatting');
    const mounted = { ...usb, children: [{ ...usb.children[0], mountpoints: ['/run/memu/backup-drive'] }] };
    expect(whyNotPreparable(lsblk([mounted]), '/dev/sdb')).toMatch(/in use \(\/dev\/sdb1 at \/run\/memu\/backup-drive\)/);
    expect(whyNotPreparable(lsblk([usb.children[0]]), '/dev/sdb1')).toBe('/dev/sdb1 is a part, not a whole drive; name the drive itself (like /dev/sda)');
    expect(whyNotPreparable(lsblk([usb]), '/dev/sdc')).toBe('/dev/sdc is not a drive this box can see');
  });

  it('finds the drive by its label, and nothing when no drive carries it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-by-label-'));
    try {
      expect(await findBackupDrive({ byLabelDir: dir, mountPoint: '/unused' })).toBeUndefined();
      await writeFile(join(dir, 'sdb1'), '');
      await symlink('sdb1', join(dir, 'MEMU-BACKUP'));
      expect(await findBackupDrive({ byLabelDir: dir, mountPoint: '/unused' })).toBe(join(dir, 'sdb1'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('reads what findmnt says is mounted', () => {
    expect(parseFindmnt('')).toBeUndefined();
    expect(parseFindmnt('{"filesystems":[{"source":"/dev/sdb1","target":"/run/memu/backup-drive"}]}')).toEqual({ source: '/dev/sdb1', target: '/run/memu/backup-drive' });
  });
});

describe('dumping the stack databases', () => {
  it('passes the password to docker by name only, never on the command line', () => {
    const args = dockerExecArgs({ container: 'memu-memu_postgres-1', user: 'postgres' }, ['pg_dump', '--format=custom', '-d', 'synapse']);
    expect(args).toEqual(['exec', '-i', '-e', 'PGPASSWORD', 'memu-memu_postgres-1', 'pg_dump', '-h', '127.0.0.1', '-U', 'postgres', '--format=custom', '-d', 'synapse']);
  });

  it('restores onto a new box with pg_restore --create in the container, the password asked when used and passed by name', async () => {
    let asked = 0;
    const target = postgresContainerRestores({ container: 'memu-memu_postgres-1', user: 'postgres', password: async () => `old-box-${++asked}` }, async () => undefined);
    expect(asked).toBe(0);
    expect(await target.restoreCommand('synapse')).toEqual({
      command: ['docker', 'exec', '-i', '-e', 'PGPASSWORD', 'memu-memu_postgres-1', 'pg_restore', '-h', '127.0.0.1', '-U', 'postgres', '--create', '--exit-on-error', '-d', 'postgres'],
      env: { PGPASSWORD: 'old-box-1' },
    });
  });
});

describe('restore folder names', () => {
  it('takes a plain name and refuses paths and hidden names', () => {
    expect(checkRestoreFolderName(' Summer 2024 ')).toBe('Summer 2024');
    for (const bad of ['../etc', 'a/b', '.hidden', '', 'x..y']) expect(() => checkRestoreFolderName(bad)).toThrow(/cannot be used: use letters, digits/);
  });
});

describe('the restore drill sample', () => {
  it('picks distinct files, as many as asked or all there are', async () => {
    const { pickSample } = await import('../../../../agent/backups/restore-drill.ts');
    const files = Array.from({ length: 100 }, (_, i) => `f${i}`);
    const sample = pickSample(files, 10);
    expect(new Set(sample).size).toBe(10);
    expect(sample.every((f) => files.includes(f))).toBe(true);
    expect(pickSample(files.slice(0, 3), 10).sort()).toEqual(['f0', 'f1', 'f2']);
    // Every file can be picked: with random() at its top end the last one comes first.
    expect(pickSample(files, 1, () => 0.999)).toEqual(['f99']);
  });
});
