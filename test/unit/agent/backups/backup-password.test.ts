import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  adoptBackupPassword,
  BACKUP_PASSWORD_BITS,
  BACKUP_PASSWORD_PATTERN,
  backupPasswordPath,
  ensureBackupPassword,
  generateBackupPassword,
} from '../../../../agent/backups/backup-password.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

describe('the backup repository password', () => {
  it('has 150 random bits, as 6 groups of 5 Crockford base32 symbols', () => {
    expect(BACKUP_PASSWORD_BITS).toBe(150);
    const passwords = Array.from({ length: 200 }, generateBackupPassword);
    for (const p of passwords) expect(p).toMatch(BACKUP_PASSWORD_PATTERN);
    expect(new Set(passwords).size).toBe(200);
    // Every symbol shows up: the bits are spread over the whole alphabet, not a corner of it.
    expect(new Set(passwords.join('').replace(/-/g, '')).size).toBe(32);
  });

  it("is kept with the device's secrets, mode 0600, made once and never regenerated", async () => {
    const dataDir = await tempDir('memu-backup-password-');
    const path = backupPasswordPath(dataDir);
    expect(path).toBe(join(dataDir, 'secrets', 'backup-repository-password'));
    const first = await ensureBackupPassword(path);
    expect(first.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dataDir, 'secrets')).mode & 0o777).toBe(0o700);
    expect(await readFile(path, 'utf8')).toBe(`${first.password}\n`);
    const again = await ensureBackupPassword(path);
    expect(again).toEqual({ password: first.password, created: false });
  });

  it("takes a recovery kit's password on a new box, and refuses to replace a different one", async () => {
    const path = backupPasswordPath(await tempDir('memu-backup-password-'));
    await adoptBackupPassword(path, ' 7KQ2M-ABCDE-FGHJK-MNPQR-STVWX-YZ012 \n');
    expect(await readFile(path, 'utf8')).toBe('7KQ2M-ABCDE-FGHJK-MNPQR-STVWX-YZ012\n');
    await adoptBackupPassword(path, '7KQ2M-ABCDE-FGHJK-MNPQR-STVWX-YZ012');
    await expect(adoptBackupPassword(path, 'another')).rejects.toThrow(/already holds another backup password/);
    await expect(adoptBackupPassword(path, '  ')).rejects.toThrow(/empty/);
  });
});
