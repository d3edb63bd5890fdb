import { join } from 'node:path';
import { randomCrockfordCode } from '../../shared/crockford-code.ts';
import { createFileOnce, readTextIfPresent } from '../../shared/files/durable-files.ts';

/**
 * The password of the device's backup repositories: generated on the device, kept with
 * its other secrets in `<dataDir>/secrets/` (directory 0700, file 0600), given to the
 * family once in the recovery kit. Without it nobody, the company included, can read a
 * backup. One password serves every target (the USB drive and the off-site one), so the
 * kit holds one password.
 *
 * provisioning's index exports only a reader of the first-boot secrets, so the file is
 * written here the same way those are: createFileOnce (temporary name, fsync, link that
 * never replaces), so a password that was once written is never regenerated, and a power
 * cut never leaves half of one. restic reads it through RESTIC_PASSWORD_FILE, never from
 * its command line.
 */
export const BACKUP_PASSWORD_FILE = 'backup-repository-password';

export function backupPasswordPath(dataDir: string): string {
  return join(dataDir, 'secrets', BACKUP_PASSWORD_FILE);
}

const GROUPS = 6;
const GROUP_LENGTH = 5;
/** 30 symbols of 5 bits: 150 random bits, far beyond guessing even without restic's scrypt. */
export const BACKUP_PASSWORD_BITS = GROUPS * GROUP_LENGTH * 5;

/** 6 groups of 5 Crockford base32 symbols (`7KQ2M-…`), so it can be read off a printed kit and typed. */
export function generateBackupPassword(): string {
  return randomCrockfordCode(GROUPS, GROUP_LENGTH);
}

export const BACKUP_PASSWORD_PATTERN = /^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){5}$/;

/** The stored password, made now if the device has none yet. */
export async function ensureBackupPassword(path: string): Promise<{ password: string; created: boolean }> {
  const { content, created } = await createFileOnce(path, `${generateBackupPassword()}\n`, { mode: 0o600 });
  return { password: content.trim(), created };
}

export async function readBackupPassword(path: string): Promise<string | undefined> {
  return (await readTextIfPresent(path))?.trim();
}

/**
 * Stores a password typed from a recovery kit, on a new box restoring its family's
 * backups. A device that has a different password already keeps it: replacing it would
 * lock the device out of the repositories it made.
 */
export async function adoptBackupPassword(path: string, password: string): Promise<void> {
  const typed = password.trim();
  if (typed.length === 0) throw new Error('the backup password is empty: type the password from the recovery kit');
  const { content } = await createFileOnce(path, `${typed}\n`, { mode: 0o600 });
  if (content.trim() !== typed) {
    throw new Error(`${path} already holds another backup password; this device's backups use it. Restore with a separate password file, or remove the device's password only if it made no backups`);
  }
}
