import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { backupPaths, createBackupModule } from '../../../../agent/backups/index.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

describe('the backups module', () => {
  it('keeps its things on the data partition', () => {
    expect(backupPaths('/var/lib/memu')).toEqual({
      passwordFile: '/var/lib/memu/secrets/backup-repository-password',
      cacheDir: '/var/lib/memu/cache/restic',
      stagingDir: '/var/lib/memu/agent/backup-staging',
      stateDir: '/var/lib/memu/agent/backups',
    });
  });

  it('start() makes the password once and clears what a stopped run left in the staging directory', async () => {
    const dataDir = await tempDir('memu-backup-module-');
    const paths = backupPaths(dataDir);
    // A run killed after copying memu.db left its set directory behind.
    mkdirSync(join(paths.stagingDir, 'memu-backup-set'), { recursive: true });
    writeFileSync(join(paths.stagingDir, 'memu-backup-set', 'memu.db'), 'a copy');
    const module = createBackupModule({ dataDir, resticBinary: 'restic-not-installed-here' }, pino({ level: 'silent' }));
    await module.start();
    expect(module.passwordFile).toBe(paths.passwordFile);
    expect(statSync(paths.passwordFile).mode & 0o777).toBe(0o600);
    expect(statSync(paths.stagingDir).mode & 0o777).toBe(0o700);
    expect(existsSync(join(paths.stagingDir, 'memu-backup-set'))).toBe(false);
    await module.stop();
    // A box without restic starts; opening a target then says why backups cannot run.
    await expect(module.open({ kind: 'local', path: join(dataDir, 'usb') })).rejects.toThrow(/restic is not installed/);
  });

  it('refuses targets restic would misread', async () => {
    const module = createBackupModule({ dataDir: await tempDir('memu-backup-module-') }, pino({ level: 'silent' }));
    await expect(module.open({ kind: 'local', path: 'relative/path' })).rejects.toThrow(/absolute path/);
    await expect(module.open({ kind: 'rest', url: 's3:https://bucket.example/x' })).rejects.toThrow(/must start with rest:/);
  });
});
