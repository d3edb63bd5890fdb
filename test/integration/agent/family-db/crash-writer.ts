import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { openFamilyDb } from '../../../../agent/family-db/family-db.ts';
import { FAMILY_DB_MIGRATIONS, type Migration } from '../../../../agent/family-db/migrations.ts';

/**
 * The process family-db.crash.test.ts kills: opens memu.db and adds the members
 * member-001 … member-NNN that are not there yet, each in one transaction with its two
 * service accounts and an audit row, printing `opening` before it opens memu.db and
 * `committed <username>` after each commit.
 *
 *   node --import tsx test/integration/agent/family-db/crash-writer.ts DB_PATH COUNT LOG_PATH
 *
 * MEMU_TEST_CRASH_AT=<point> (a fault point of memu.db, or WRITER_POINT between the
 * member's row and its accounts) with MEMU_TEST_CRASH_NTH=<n> SIGKILLs it at the n-th
 * time it reaches that point. MEMU_TEST_SECOND_MIGRATION=1 adds NICKNAMES, a migration
 * that rewrites every member row, so it can be killed in a migration with data in it.
 */
export const WRITER_POINT = 'writer:after-member-row';

export const NICKNAMES: Migration = {
  version: 2,
  name: 'member-nicknames',
  sql: /* sql */ `
ALTER TABLE members ADD COLUMN nickname TEXT;
UPDATE members SET nickname = 'nick-' || username;
CREATE TABLE nickname_history (
  member_id INTEGER NOT NULL REFERENCES members (id),
  nickname  TEXT    NOT NULL
) STRICT;
INSERT INTO nickname_history SELECT id, nickname FROM members;
`,
};

export const memberName = (i: number) => `member-${String(i).padStart(3, '0')}`;

function main(dbPath: string, count: number, logPath: string): void {
  const crashAt = process.env.MEMU_TEST_CRASH_AT;
  const nth = Number(process.env.MEMU_TEST_CRASH_NTH ?? 1);
  let reached = 0;
  const point = (name: string) => {
    if (name === crashAt && ++reached === nth) process.kill(process.pid, 'SIGKILL');
  };
  const log = pino({ level: 'info' }, pino.destination({ dest: logPath, sync: true, append: true, mkdir: true }));
  const migrations = process.env.MEMU_TEST_SECOND_MIGRATION === '1' ? [...FAMILY_DB_MIGRATIONS, NICKNAMES] : FAMILY_DB_MIGRATIONS;
  writeSync(1, 'opening\n');
  const db = openFamilyDb(dbPath, log, { migrations, faultInjection: point });
  const nicknames = db.schemaVersion() >= 2;
  for (let i = 1; i <= count; i++) {
    const username = memberName(i);
    if (db.get('SELECT 1 AS found FROM members WHERE username = ?', [username])) continue;
    db.transaction(() => {
      const now = Date.now();
      const id = db.run('INSERT INTO members (username, display_name, created_at) VALUES (?, ?, ?)', [username, `Member ${i}`, now]).lastInsertRowid;
      if (nicknames) {
        db.run('UPDATE members SET nickname = ? WHERE id = ?', [`nick-${username}`, id]);
        db.run('INSERT INTO nickname_history VALUES (?, ?)', [id, `nick-${username}`]);
      }
      point(WRITER_POINT);
      db.run("INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (?, 'synapse', 'pending', ?)", [id, now]);
      db.run("INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (?, 'immich', 'pending', ?)", [id, now]);
      db.run("INSERT INTO audit_log (at, actor, action, detail) VALUES (?, 'system', 'member.add', json_object('member', ?))", [now, username]);
    });
    writeSync(1, `committed ${username}\n`);
  }
  db.close();
  writeSync(1, 'done\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [dbPath, count, logPath] = process.argv.slice(2);
  main(dbPath!, Number(count), logPath!);
}
