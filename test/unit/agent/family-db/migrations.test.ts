import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFamilyDb, type FamilyDb, type SqlValue } from '../../../../agent/family-db/family-db.ts';

/**
 * The schema of migration 1 refuses what the wizard and dashboard must never store. Each
 * case runs in a transaction that is rolled back, so the cases do not see each other.
 */
const PHC = '$scrypt$ln=17,r=8,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA';
const SESSION = 'a'.repeat(64);

let db: FamilyDb;
const ROLLBACK = new Error('rollback');

/** Runs `statements` in a transaction that is always rolled back; returns the error SQLite gave, if any. */
function attempt(...statements: [string, SqlValue[]?][]): string | undefined {
  try {
    db.transaction(() => {
      for (const [sql, params] of statements) db.run(sql, params ?? []);
      throw ROLLBACK;
    });
  } catch (err) {
    return err === ROLLBACK ? undefined : (err as Error).message;
  }
  return undefined;
}

const admin = (username = 'mum', hash = PHC, display = 'Mum'): [string, SqlValue[]] => [
  'INSERT INTO admins (username, display_name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, 0, 0)',
  [username, display, hash],
];
const member = (username = 'ada', display = 'Ada', id = 1): [string, SqlValue[]] => [
  'INSERT INTO members (id, username, display_name, created_at) VALUES (?, ?, ?, 0)',
  [id, username, display],
];
const account = (service = 'synapse', state = 'pending', externalId: string | null = null, lastError: string | null = null, memberId = 1): [string, SqlValue[]] => [
  'INSERT INTO service_accounts (member_id, service, state, external_id, last_error, updated_at) VALUES (?, ?, ?, ?, ?, 0)',
  [memberId, service, state, externalId, lastError],
];
const session = (idHash = SESSION, username = 'mum'): [string, SqlValue[]] => [
  'INSERT INTO sessions (id_hash, username, created_at, last_seen_at, expires_at) VALUES (?, ?, 0, 0, 1)',
  [idHash, username],
];
const audit = (action: string, detail: string): [string, SqlValue[]] => ["INSERT INTO audit_log (at, actor, action, detail) VALUES (0, 'mum', ?, ?)", [action, detail]];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-family-db-'));
  db = openFamilyDb(join(dir, 'memu.db'), pino({ level: 'silent' }));
});
afterAll(async () => {
  db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('memu.db schema (migration 1)', () => {
  it('takes well-formed rows in every table', () => {
    expect(
      attempt(
        ["INSERT INTO family (id, name, created_at) VALUES (1, 'Les Lovelace–Ngô 家', 0)"],
        admin(),
        session(),
        member('ada.l-2_x', 'Ada ❤️ عائلة'),
        account('synapse', 'created', '@ada.l-2_x:memu.local'),
        account('immich', 'failed', null, 'Immich is not installed on this box'),
        audit('member.add', '{"member":"ada"}'),
        ["INSERT INTO wizard (id, completed_steps, current_step, updated_at) VALUES (1, '[\"claim\",\"family\"]', 'network', 0)"],
        ["INSERT INTO login_attempts (key, window_start, count, last_at) VALUES ('claim:ip:192.0.2.7', 0, 3, 5)"],
      ),
    ).toBeUndefined();
  });

  it.each([
    ['a second family row', [["INSERT INTO family (id, name, created_at) VALUES (2, 'Others', 0)"]], 'CHECK constraint failed: id = 1'],
    ['a blank family name', [["INSERT INTO family (id, name, created_at) VALUES (1, '   ', 0)"]], 'CHECK constraint failed'],
    ['an upper-case username', [admin('Mum')], 'CHECK constraint failed'],
    ['a username with a space', [member('ada l')], 'CHECK constraint failed'],
    ['a username starting with a digit', [member('1ada')], 'CHECK constraint failed'],
    ['a username of 33 characters', [member('a'.repeat(33))], 'CHECK constraint failed'],
    ['a display name of 101 characters', [member('ada', 'A'.repeat(101))], 'CHECK constraint failed'],
    ['a bare password as the hash', [admin('mum', 'correct horse battery staple and more words')], 'CHECK constraint failed'],
    ['a session token that is not a SHA-256 in hex', [admin(), session('not-a-hash')], 'CHECK constraint failed'],
    ['a session of nobody', [session()], 'FOREIGN KEY constraint failed'],
    ['the same member username twice', [member('ada', 'Ada', 1), member('ada', 'Ada', 2)], 'UNIQUE constraint failed: members.username'],
    ['an account of no member', [account()], 'FOREIGN KEY constraint failed'],
    ['an unknown service', [member(), account('nextcloud')], 'CHECK constraint failed'],
    ['an unknown state', [member(), account('synapse', 'done')], 'CHECK constraint failed'],
    ['a created account without its ID on the service', [member(), account('synapse', 'created')], 'CHECK constraint failed'],
    ['an account being removed without its ID', [member(), account('immich', 'removing')], 'CHECK constraint failed'],
    ['a failed account without its reason', [member(), account('immich', 'failed')], 'CHECK constraint failed'],
    ['two accounts of a member on one service', [member(), account(), account()], 'UNIQUE constraint failed'],
    ['deleting a member who has accounts', [member(), account(), ['DELETE FROM members WHERE id = 1']], 'FOREIGN KEY constraint failed'],
    ['negative attempts', [member(), ["INSERT INTO service_accounts (member_id, service, state, attempts, updated_at) VALUES (1, 'synapse', 'pending', -1, 0)"]], 'CHECK constraint failed'],
    ['audit detail that is not JSON', [audit('member.add', 'ada added')], 'CHECK constraint failed'],
    ['audit detail that is a JSON array', [audit('member.add', '["ada"]')], 'CHECK constraint failed'],
    ['an audit action with spaces', [audit('added a member', '{}')], 'CHECK constraint failed'],
    ['changing an audit row', [audit('member.add', '{}'), ["UPDATE audit_log SET actor = 'someone-else'"]], 'audit_log is append-only'],
    ['a second wizard row', [["INSERT INTO wizard (id, current_step, updated_at) VALUES (2, 'claim', 0)"]], 'CHECK constraint failed: id = 1'],
    ['completed wizard steps that are not a JSON array', [["INSERT INTO wizard (id, completed_steps, current_step, updated_at) VALUES (1, '{}', 'claim', 0)"]], 'CHECK constraint failed'],
    ['a rate-limit count of zero', [["INSERT INTO login_attempts (key, window_start, count, last_at) VALUES ('claim:global', 0, 0, 0)"]], 'CHECK constraint failed'],
    ['text where a time goes (STRICT)', [["INSERT INTO members (username, display_name, created_at) VALUES ('ada', 'Ada', 'yesterday')"]], 'cannot store TEXT value in INTEGER column members.created_at'],
    ['a missing required value', [["INSERT INTO members (username, created_at) VALUES ('ada', 0)"]], 'NOT NULL constraint failed: members.display_name'],
  ] as [string, [string, SqlValue[]?][], string][])('refuses %s', (_what, statements, error) => {
    expect(attempt(...statements)).toContain(error);
  });

  it('removes an admin\'s sessions with the admin, and follows a renamed admin', () => {
    db.transaction(() => {
      db.run(...admin('mum'));
      db.run(...session(SESSION, 'mum'));
      db.run(...admin('dad'));
      db.run(...session('b'.repeat(64), 'dad'));
    });
    db.run("UPDATE admins SET username = 'mother' WHERE username = 'mum'");
    db.run("DELETE FROM admins WHERE username = 'dad'");
    expect(db.all('SELECT id_hash, username FROM sessions')).toEqual([{ id_hash: SESSION, username: 'mother' }]);
  });

  it('lets old audit rows be pruned, and never reuses their ids', () => {
    db.run(...audit('first', '{}'));
    db.run(...audit('second', '{}'));
    db.run('DELETE FROM audit_log');
    const { lastInsertRowid } = db.run(...audit('third', '{}'));
    expect(Number(lastInsertRowid)).toBeGreaterThan(2);
  });
});
