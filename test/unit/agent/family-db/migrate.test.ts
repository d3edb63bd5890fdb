import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openFamilyDb, type FamilyDb } from '../../../../agent/family-db/family-db.ts';
import { FAMILY_DB_MIGRATIONS, type Migration } from '../../../../agent/family-db/migrations.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });

const ADD_PETS: Migration = { version: 2, name: 'add-pets', sql: 'CREATE TABLE pets (name TEXT NOT NULL) STRICT;' };
const ADD_TOYS: Migration = { version: 3, name: 'add-toys', sql: 'CREATE TABLE toys (name TEXT NOT NULL) STRICT;' };

const schema = (db: FamilyDb) => db.all<{ type: string; name: string; sql: string | null }>('SELECT type, name, sql FROM sqlite_schema ORDER BY name');
const recorded = (db: FamilyDb) => db.all<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');

async function dbPath(): Promise<string> {
  return join(await tempDir('memu-family-db-'), 'agent', 'memu.db');
}

function openClose<T>(path: string, migrations: readonly Migration[], fn: (db: FamilyDb) => T): T {
  const db = openFamilyDb(path, log, { migrations });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

describe('memu.db migrations', () => {
  it('a fresh file gets every migration, recorded, with user_version equal to the last', async () => {
    const path = await dbPath();
    openClose(path, FAMILY_DB_MIGRATIONS, (db) => {
      expect(db.schemaVersion()).toBe(FAMILY_DB_MIGRATIONS.length);
      expect(recorded(db)).toEqual(FAMILY_DB_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      const tables = schema(db).filter((o) => o.type === 'table').map((o) => o.name);
      expect(tables).toEqual(
        expect.arrayContaining(['family', 'admins', 'sessions', 'members', 'service_accounts', 'audit_log', 'wizard', 'login_attempts', 'schema_migrations']),
      );
    });
  });

  it('re-opening an up-to-date file applies nothing and changes nothing', async () => {
    const path = await dbPath();
    const before = openClose(path, FAMILY_DB_MIGRATIONS, (db) => ({ schema: schema(db), recorded: recorded(db) }));
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const db = openFamilyDb(path, capture);
    try {
      expect({ schema: schema(db), recorded: recorded(db) }).toEqual(before);
    } finally {
      db.close();
    }
    expect(lines.some((l) => l.includes('"memu.db migrated"'))).toBe(false);
    expect(lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'memu.db open')).toMatchObject({ migrated: [], schemaVersion: 1 });
  });

  it('applies only the migrations a file does not have yet', async () => {
    const path = await dbPath();
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS], () => {});
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS, ADD_TOYS], (db) => {
      expect(db.schemaVersion()).toBe(3);
      expect(recorded(db).map((r) => r.name)).toEqual(['initial-schema', 'add-pets', 'add-toys']);
    });
  });

  it('refuses a file from a newer agent, naming the file and both versions, and leaves it as it was', async () => {
    const path = await dbPath();
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS], (db) => db.run("INSERT INTO pets VALUES ('Rex')"));
    expect(() => openFamilyDb(path, log)).toThrow(
      new RegExp(`^${path.replace(/[.]/g, '\\.')} is at schema version 2 \\("add-pets"\\), but this agent knows versions up to 1: it was written by a newer memu-agent`),
    );
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS], (db) => {
      expect(db.schemaVersion()).toBe(2);
      expect(db.all('SELECT name FROM pets')).toEqual([{ name: 'Rex' }]);
    });
  });

  it('refuses a newer user_version even when schema_migrations does not show it', async () => {
    const path = await dbPath();
    openClose(path, FAMILY_DB_MIGRATIONS, (db) => db.run('PRAGMA user_version = 7'));
    expect(() => openFamilyDb(path, log)).toThrow(`${path} is at schema version 7, but this agent knows versions up to 1`);
  });

  it('a failing migration leaves the file at the version before it, with nothing of it applied', async () => {
    const path = await dbPath();
    openClose(path, FAMILY_DB_MIGRATIONS, (db) => db.run("INSERT INTO family (id, name, created_at) VALUES (1, 'The Lovelaces', 0)"));
    const failing: Migration = { version: 2, name: 'half-done', sql: 'CREATE TABLE pets (name TEXT NOT NULL) STRICT; INSERT INTO pets VALUES (NULL);' };
    expect(() => openFamilyDb(path, log, { migrations: [...FAMILY_DB_MIGRATIONS, failing] })).toThrow('NOT NULL constraint failed: pets.name');
    openClose(path, FAMILY_DB_MIGRATIONS, (db) => {
      expect(db.schemaVersion()).toBe(1);
      expect(recorded(db).map((r) => r.name)).toEqual(['initial-schema']);
      expect(db.get("SELECT name FROM sqlite_schema WHERE name = 'pets'")).toBeUndefined();
      expect(db.get('SELECT name FROM family')).toEqual({ name: 'The Lovelaces' });
    });
  });

  it('a migration that leaves a foreign key pointing nowhere fails and is rolled back', async () => {
    const path = await dbPath();
    const dangling: Migration = {
      version: 2,
      name: 'dangling-account',
      // foreign_keys is enforced per statement, so turn it off the way a table rebuild would.
      sql: "PRAGMA defer_foreign_keys = ON; INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (42, 'synapse', 'pending', 0);",
    };
    expect(() => openFamilyDb(path, log, { migrations: [...FAMILY_DB_MIGRATIONS, dangling] })).toThrow(
      'migration 2 "dangling-account" leaves 1 rows whose foreign keys point nowhere (first: service_accounts -> members)',
    );
    openClose(path, FAMILY_DB_MIGRATIONS, (db) => {
      expect(db.schemaVersion()).toBe(1);
      expect(db.all('SELECT * FROM service_accounts')).toEqual([]);
    });
  });

  it('refuses a file whose recorded history differs from the code', async () => {
    const path = await dbPath();
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS], () => {});
    const renamed = { ...ADD_PETS, name: 'add-cats' };
    expect(() => openFamilyDb(path, log, { migrations: [...FAMILY_DB_MIGRATIONS, renamed] })).toThrow(
      `${path} records migration 2 "add-pets" where this agent has 2 "add-cats": it comes from another schema history`,
    );
  });

  it('refuses a file whose user_version disagrees with its recorded migrations', async () => {
    const path = await dbPath();
    openClose(path, [...FAMILY_DB_MIGRATIONS, ADD_PETS], (db) => db.run('PRAGMA user_version = 1'));
    expect(() => openFamilyDb(path, log, { migrations: [...FAMILY_DB_MIGRATIONS, ADD_PETS] })).toThrow(
      `${path} has user_version 1 but its last recorded migration is 2`,
    );
  });

  it('refuses a SQLite file that is not a memu.db, and a file that is not SQLite at all', async () => {
    const path = await dbPath();
    openClose(path, [], (db) => db.run('CREATE TABLE notes (text TEXT)'));
    expect(() => openFamilyDb(path, log)).toThrow(`${path} holds 1 tables or indexes but no schema_migrations: it is not a memu.db`);
    const other = join(path, '..', 'other.db');
    writeFileSync(other, 'this is not a database, but it is long enough to have a header page of sorts '.repeat(20));
    expect(() => openFamilyDb(other, log)).toThrow(`cannot open ${other}: file is not a database`);
  });

  it('refuses a migration list that is out of order or badly named, before touching the file', async () => {
    const path = await dbPath();
    expect(() => openFamilyDb(path, log, { migrations: [ADD_PETS] })).toThrow('migration "add-pets" has version 2 at position 1');
    expect(() => openFamilyDb(path, log, { migrations: [{ ...FAMILY_DB_MIGRATIONS[0]!, name: 'Initial Schema' }] })).toThrow('use lowercase words joined by dashes');
    expect(() => openFamilyDb(path, log, { migrations: [...FAMILY_DB_MIGRATIONS, { ...ADD_PETS, name: 'initial-schema' }] })).toThrow('two migrations are named "initial-schema"');
    expect(existsSync(path)).toBe(false);
  });

  it('calls the fault hook at each point of a migration, in order', async () => {
    const points: string[] = [];
    const db = openFamilyDb(await dbPath(), log, { migrations: [...FAMILY_DB_MIGRATIONS, ADD_PETS], faultInjection: (p) => void points.push(p) });
    db.close();
    const of = (m: Migration) => ['after-begin', 'after-sql', 'before-commit', 'after-commit'].map((p) => `migration:${m.version}-${m.name}:${p}`);
    expect(points).toEqual([...of(FAMILY_DB_MIGRATIONS[0]!), ...of(ADD_PETS)]);
  });
});
