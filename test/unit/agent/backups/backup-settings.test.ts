import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  backupSettingsPath,
  DEFAULT_BACKUP_SETTINGS,
  describeTarget,
  publicTarget,
  readBackupSettings,
  targetFromInput,
  TargetInputError,
  writeBackupSettings,
} from '../../../../agent/backups/backup-settings.ts';

const NOW = Date.UTC(2026, 11, 5, 12);
const empty = () => structuredClone(DEFAULT_BACKUP_SETTINGS);
const problems = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    if (err instanceof TargetInputError) return err.problems;
    throw err;
  }
  throw new Error('no error');
};

describe('backup targets from a form', () => {
  it('takes a USB drive, a folder, a REST server, S3 with its keys and SFTP', () => {
    expect(targetFromInput({ kind: 'usb-drive' }, empty(), NOW)).toMatchObject({ kind: 'usb-drive', label: 'USB drive', addedAt: NOW });
    expect(targetFromInput({ kind: 'directory', path: '/mnt/nas/memu', label: ' NAS ' }, empty(), NOW)).toMatchObject({ kind: 'directory', path: '/mnt/nas/memu', label: 'NAS' });
    expect(targetFromInput({ kind: 'rest', url: 'rest:https://fam:pw@backup.example.net:8000/memu' }, empty(), NOW)).toMatchObject({ kind: 'rest' });
    const s3 = targetFromInput({ kind: 's3', url: 's3:https://s3.example.com/family', accessKeyId: 'AKIA1', secretAccessKey: 's3cr3t', region: 'eu-central-1' }, empty(), NOW);
    expect(s3).toMatchObject({ kind: 's3', accessKeyId: 'AKIA1', secretAccessKey: 's3cr3t', region: 'eu-central-1' });
    expect(targetFromInput({ kind: 'sftp', url: 'sftp:backup@nas.local:/srv/memu' }, empty(), NOW)).toMatchObject({ kind: 'sftp' });
  });

  it('names what is wrong and what to type instead', () => {
    expect(problems(() => targetFromInput({ kind: 'ftp' }, empty(), NOW))).toEqual(['the kind must be one of usb-drive, directory, rest, s3, sftp (got "ftp")']);
    expect(problems(() => targetFromInput({ kind: 'directory', path: 'relative/dir' }, empty(), NOW))).toEqual(['path: an absolute path, like /mnt/nas/memu']);
    expect(problems(() => targetFromInput({ kind: 'rest', url: 'https://backup.example.net' }, empty(), NOW))).toEqual([
      'url: a restic REST server address, like rest:https://user:password@backup.example.net:8000/memu',
    ]);
    expect(problems(() => targetFromInput({ kind: 's3', url: 's3:https://s3.example.com/family' }, empty(), NOW))).toEqual([
      'accessKeyId: the access key id, without spaces',
      'secretAccessKey: the secret access key, without spaces',
    ]);
  });

  it('refuses a second USB drive, the same address twice, and a fifth target', () => {
    const s = empty();
    s.targets.push(targetFromInput({ kind: 'usb-drive' }, s, NOW));
    expect(problems(() => targetFromInput({ kind: 'usb-drive' }, s, NOW))).toEqual(['a USB drive is already a target']);
    s.targets.push(targetFromInput({ kind: 'rest', url: 'rest:https://a:secret@h/x' }, s, NOW));
    expect(problems(() => targetFromInput({ kind: 'rest', url: 'rest:https://a:secret@h/x' }, s, NOW))).toEqual(['rest:https://a:***@h/x is already a target']);
    s.targets.push(targetFromInput({ kind: 'directory', path: '/a' }, s, NOW), targetFromInput({ kind: 'directory', path: '/b' }, s, NOW));
    expect(problems(() => targetFromInput({ kind: 'directory', path: '/c' }, s, NOW))).toEqual(['there are already 4 targets; remove one first']);
  });

  it('shows no password or secret key in what the API and pages get', () => {
    const rest = targetFromInput({ kind: 'rest', url: 'rest:https://fam:hunter2@backup.example.net/memu' }, empty(), NOW);
    const s3 = targetFromInput({ kind: 's3', url: 's3:https://s3.example.com/family', accessKeyId: 'AKIA1', secretAccessKey: 'very-secret' }, empty(), NOW);
    expect(JSON.stringify([publicTarget(rest), publicTarget(s3), describeTarget(rest)])).not.toMatch(/hunter2|very-secret/);
    expect(publicTarget(rest).address).toBe('rest:https://fam:***@backup.example.net/memu');
  });
});

describe('the settings file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-backup-settings-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('is the default (03:30, no targets) until written, then 0600 and read back', async () => {
    expect(await readBackupSettings(dir)).toEqual({ format: 'memu-backup-settings/1', dailyTime: '03:30', targets: [] });
    const s = empty();
    s.dailyTime = '01:15';
    s.targets.push(targetFromInput({ kind: 's3', url: 's3:https://s3.example.com/f', accessKeyId: 'k', secretAccessKey: 's' }, s, NOW));
    await writeBackupSettings(dir, s);
    expect((await stat(backupSettingsPath(dir))).mode & 0o777).toBe(0o600);
    expect(await readBackupSettings(dir)).toEqual(s);
  });

  it('a damaged file is refused naming the file, the field and what to do', async () => {
    await mkdir(join(dir, 'secrets'));
    await writeFile(backupSettingsPath(dir), JSON.stringify({ format: 'memu-backup-settings/1', dailyTime: '25:00', targets: [] }));
    await expect(readBackupSettings(dir)).rejects.toThrow(`${backupSettingsPath(dir)} is invalid: dailyTime: HH:MM on a 24-hour clock, like 03:30\nFix it, or remove it and add the backup targets again.`);
    await writeFile(backupSettingsPath(dir), '{"format":');
    await expect(readBackupSettings(dir)).rejects.toThrow(/is not valid JSON .*fix it or remove it/);
    expect(await readFile(backupSettingsPath(dir), 'utf8')).toBe('{"format":');
  });
});
