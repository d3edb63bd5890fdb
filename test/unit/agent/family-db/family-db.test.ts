import fs, { existsSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { familyDbPath, openFamilyDb, type FamilyDb } from '../../../../agent/family-db/family-db.ts';
import { createFamilyDbModule } from '../../../../agent/family-db/index.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });
const opened: FamilyDb[] = [];

async function freshDb(faultInjection?: (point: string) => void): Promise<FamilyDb> {
  const db = openFamilyDb(join(await tempDir('memu-family-db-'), 'agent', 'memu.db'), log, { faultInjection });
  opened.push(db);
  return db;
}

const addMember = (db: FamilyDb, username: string) =>
  Number(db.run('INSERT INTO members (username, display_name, created_at) VALUES (?, ?, 0)', [username, username.toUpperCase()]).lastInsertRowid);
const usernames = (db: FamilyDb) => db.all<{ username: string }>('SELECT username FROM members ORDER BY id').map((r) => r.username);

afterEach(() => {
  for (const db of opened.splice(0)) db.close();
  vi.restoreAllMocks();
});

describe('memu.db', () => {
  it('lives in the data partition\'s agent directory', () => {
    expect(familyDbPath('/var/lib/memu')).toBe('/var/lib/memu/agent/memu.db');
  });

  it('is a write-ahead-logged SQLite file with full syncs, an exclusive lock (no -shm file) and foreign keys on, readable by root alone', async () => {
    const db = await freshDb();
    expect(db.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
    expect(db.get('PRAGMA locking_mode')).toEqual({ locking_mode: 'exclusive' });
    expect(db.get('PRAGMA synchronous')).toEqual({ synchronous: 2 });
    expect(db.get('PRAGMA foreign_keys')).toEqual({ foreign_keys: 1 });
    expect(statSync(db.path).mode & 0o777).toBe(0o600);
    expect(statSync(`${db.path}-wal`).mode & 0o777).toBe(0o600);
    expect(existsSync(`${db.path}-shm`)).toBe(false);
  });

  it('refuses a second connection while the first holds memu.db, and lets the next one in once it closes', async () => {
    const db = await freshDb();
    addMember(db, 'ada');
    expect(() => openFamilyDb(db.path, log, { lockWaitMs: 200 })).toThrow(`${db.path} is locked by another process: is a second memu-agent running?`);
    db.close();
    const again = openFamilyDb(db.path, log);
    opened.push(again);
    expect(usernames(again)).toEqual(['ada']);
  });

  describe('transaction', () => {
    it('commits what the function did and returns its value', async () => {
      const db = await freshDb();
      const id = db.transaction(() => {
        const member = addMember(db, 'ada');
        db.run("INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (?, 'synapse', 'pending', 0)", [member]);
        return member;
      });
      expect(id).toBe(1);
      expect(db.all('SELECT member_id, service FROM service_accounts')).toEqual([{ member_id: 1, service: 'synapse' }]);
    });

    it('rolls back everything when the function throws, rethrows the error, and stays usable', async () => {
      const db = await freshDb();
      addMember(db, 'ada');
      const failure = new Error('Immich did not answer');
      expect(() =>
        db.transaction(() => {
          addMember(db, 'bob');
          db.run("UPDATE members SET display_name = 'Changed' WHERE username = 'ada'");
          throw failure;
        }),
      ).toThrow(failure);
      expect(db.all('SELECT username, display_name FROM members')).toEqual([{ username: 'ada', display_name: 'ADA' }]);
      db.transaction(() => addMember(db, 'cy'));
      expect(usernames(db)).toEqual(['ada', 'cy']);
    });

    it('rolls back the statements before a constraint violation', async () => {
      const db = await freshDb();
      addMember(db, 'ada');
      expect(() =>
        db.transaction(() => {
          addMember(db, 'bob');
          addMember(db, 'ada');
        }),
      ).toThrow('UNIQUE constraint failed: members.username');
      expect(usernames(db)).toEqual(['ada']);
    });

    it('refuses an async function and rolls back what it did before its first await', async () => {
      const db = await freshDb();
      expect(() =>
        db.transaction(async () => {
          addMember(db, 'ada');
          await Promise.resolve();
        }),
      ).toThrow('a transaction\'s function must be synchronous; it returned a promise');
      expect(usernames(db)).toEqual([]);
    });

    it('does not nest', async () => {
      const db = await freshDb();
      expect(() =>
        db.transaction(() => {
          addMember(db, 'ada');
          db.transaction(() => addMember(db, 'bob'));
        }),
      ).toThrow('transactions do not nest');
      expect(usernames(db)).toEqual([]);
    });

    it('calls the fault hook after BEGIN, before COMMIT and after COMMIT; a hook that throws before COMMIT rolls back', async () => {
      const points: string[] = [];
      const db = await freshDb((point) => {
        points.push(point);
        if (point === 'transaction:before-commit' && points.filter((p) => p === point).length === 2) throw new Error('cut');
      });
      points.length = 0; // the migrations' points
      db.transaction(() => addMember(db, 'ada'));
      expect(points).toEqual(['transaction:after-begin', 'transaction:before-commit', 'transaction:after-commit']);
      expect(() => db.transaction(() => addMember(db, 'bob'))).toThrow('cut');
      expect(usernames(db)).toEqual(['ada']);
    });
  });

  it('answers undefined for no row, and binds named values', async () => {
    const db = await freshDb();
    expect(db.get("SELECT * FROM members WHERE username = 'nobody'")).toBeUndefined();
    db.run('INSERT INTO members (username, display_name, created_at) VALUES (:u, :d, :at)', { u: 'ada', d: 'Ada 🧮 Лавлейс', at: 5 });
    expect(db.get('SELECT display_name FROM members WHERE username = $u', { u: 'ada' })).toEqual({ display_name: 'Ada 🧮 Лавлейс' });
  });

  it('after close, refuses statements, leaves no write-ahead log or lock behind, and closes again quietly', async () => {
    const db = openFamilyDb(join(await tempDir('memu-family-db-'), 'memu.db'), log);
    addMember(db, 'ada');
    db.close();
    db.close();
    expect(() => db.get('SELECT 1')).toThrow(`${db.path} is closed`);
    expect(['-wal', '-shm'].filter((s) => existsSync(`${db.path}${s}`))).toEqual([]);
    const again = openFamilyDb(db.path, log);
    opened.push(again);
    expect(usernames(again)).toEqual(['ada']);
  });

  it('as an agent module: opens <dataDir>/agent/memu.db on start, closes it on stop', async () => {
    const dataDir = await tempDir('memu-family-db-');
    const module = createFamilyDbModule({ dataDir }, log);
    expect(module.name).toBe('family-db');
    expect(() => module.db).toThrow('memu.db is not open');
    await module.start();
    expect(module.db.path).toBe(join(dataDir, 'agent', 'memu.db'));
    expect(module.db.schemaVersion()).toBe(1);
    expect(statSync(join(dataDir, 'agent')).mode & 0o777).toBe(0o700);
    await module.stop();
    expect(() => module.db).toThrow('memu.db is not open');
    expect(existsSync(join(dataDir, 'agent', 'memu.db-wal'))).toBe(false);
  });
});
