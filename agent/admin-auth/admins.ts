import type { FamilyDb } from '../family-db/index.ts';
import { hashSecret, verifySecret } from '../secret-hash/index.ts';
import { passwordProblem } from './password-rules.ts';

export interface AdminRecord {
  username: string;
  displayName: string;
}

/** What a form field is wrong with, in words for the person who typed it. */
export type FieldProblems = Partial<Record<'username' | 'displayName' | 'password' | 'familyName' | 'currentPassword', string>>;

/** Usernames as memu.db's schema takes them: 1–32 of a-z 0-9 . _ -, starting with a letter. */
export function usernameProblem(username: string): string | undefined {
  if (!/^[a-z][a-z0-9._-]{0,31}$/.test(username)) return 'use 1–32 lowercase letters, digits, dots, dashes or underscores, starting with a letter';
  return undefined;
}

export function displayTextProblem(text: string, what: string): string | undefined {
  if (text.trim() === '') return `${what} is empty`;
  if ([...text].length > 100) return `${what} is longer than 100 characters`;
  if (/\p{Cc}/u.test(text)) return `${what} contains control characters`;
  return undefined;
}

export function hasAdmin(db: FamilyDb): boolean {
  return db.get<{ n: number }>('SELECT count(*) AS n FROM admins')!.n > 0;
}

export function findAdmin(db: FamilyDb, username: string): (AdminRecord & { passwordHash: string }) | undefined {
  const row = db.get<{ username: string; display_name: string; password_hash: string }>('SELECT username, display_name, password_hash FROM admins WHERE username = ?', [username]);
  return row && { username: row.username, displayName: row.display_name, passwordHash: row.password_hash };
}

/** Checks the new admin's fields; the password hash is made before any write. */
export async function prepareAdmin(input: { username: string; displayName: string; password: string; familyName?: string }): Promise<{ problems: FieldProblems } | { passwordHash: string }> {
  const problems: FieldProblems = {};
  const u = usernameProblem(input.username);
  if (u) problems.username = u;
  const d = displayTextProblem(input.displayName, 'your name');
  if (d) problems.displayName = d;
  const p = passwordProblem(input.password, { username: input.username, familyName: input.familyName });
  if (p) problems.password = `the password ${p}`;
  if (Object.keys(problems).length > 0) return { problems };
  return { passwordHash: await hashSecret(input.password) };
}

/** Whether `password` is the admin's. The same work is done for an unknown username, so timing does not tell which names exist. */
export async function passwordMatches(db: FamilyDb, username: string, password: string): Promise<AdminRecord | undefined> {
  const admin = findAdmin(db, username);
  const ok = await verifySecret(password, admin?.passwordHash ?? DUMMY_HASH);
  return admin && ok ? { username: admin.username, displayName: admin.displayName } : undefined;
}

// A hash of nothing anyone can type, verified when the username is unknown.
const DUMMY_HASH = '$scrypt$ln=15,r=8,p=1$bWVtdS1kdW1teS1zYWx0$3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w3q2+7w0';

/** Replaces the admin's password hash; false when there is no such admin. */
export function setAdminPassword(db: FamilyDb, username: string, passwordHash: string, at = Date.now()): boolean {
  return db.run('UPDATE admins SET password_hash = ?, password_changed_at = ? WHERE username = ?', [passwordHash, at, username]).changes === 1;
}
