import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATION_POINTS, openFamilyDb, TRANSACTION_POINTS } from '../../../../agent/family-db/family-db.ts';
import { FAMILY_DB_MIGRATIONS, type Migration } from '../../../../agent/family-db/migrations.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';
import { memberName, NICKNAMES, WRITER_POINT } from './crash-writer.ts';

/**
 * Power cut at any instant, for memu.db: a child process (crash-writer.ts) adds members,
 * each with its two service accounts and an audit row in one transaction, and is
 * SIGKILLed inside migrations, at every transaction point, between a member's row and its
 * accounts, and at random times. After every kill a copy of what is on disk (the file and
 * its write-ahead log) must pass SQLite's integrity check and hold every transaction
 * wholly or not at all, every transaction the child reported committed among them, at
 * exactly the schema of one migration or the next; the killed child's own lock must not
 * stop the next run, which carries on where it stopped.
 */
const WRITER = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
const MEMBERS = 60;
const RANDOM_MEMBERS = 400;

interface ChildResult {
  signal: NodeJS.Signals | null;
  code: number | null;
  committed: string[];
  done: boolean;
  /** From `opening` to `done`: the time memu.db was in use, without Node's start. */
  activeMs: number;
  stderr: string;
}

interface Device {
  dir: string;
  db: string;
  log: string;
  /** Every member a child reported committed, over all runs. */
  committed: Set<string>;
}

/** killAfterMs counts from the child's `opening` line, so a kill never lands in Node's start. */
function runWriter(device: Device, count: number, opts: { crashAt?: string; nth?: number; killAfterMs?: number; secondMigration?: boolean } = {}): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, device.db, String(count), device.log], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        MEMU_TEST_CRASH_AT: opts.crashAt ?? '',
        MEMU_TEST_CRASH_NTH: String(opts.nth ?? 1),
        MEMU_TEST_SECOND_MIGRATION: opts.secondMigration ? '1' : '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let openedAt: number | undefined;
    let doneAt: number | undefined;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (openedAt === undefined && stdout.includes('opening\n')) {
        openedAt = Date.now();
        if (opts.killAfterMs !== undefined) timer = setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
      }
      if (doneAt === undefined && stdout.includes('done\n')) doneAt = Date.now();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.split('\n');
      const committed = lines.filter((l) => l.startsWith('committed ')).map((l) => l.slice('committed '.length));
      for (const name of committed) device.committed.add(name);
      const activeMs = openedAt === undefined ? 0 : (doneAt ?? Date.now()) - openedAt;
      resolve({ signal, code, committed, done: lines.includes('done'), activeMs, stderr });
    });
  });
}

type SchemaObject = { type: string; name: string; sql: string | null };
const SCHEMA_SQL = "SELECT type, name, sql FROM sqlite_schema WHERE name <> 'sqlite_sequence' ORDER BY type, name";

/** The schema after each migration of [1, NICKNAMES], from uninterrupted runs; version 0 is an empty file. */
async function referenceSchemas(): Promise<SchemaObject[][]> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-family-db-ref-'));
  try {
    const lists: Migration[][] = [[...FAMILY_DB_MIGRATIONS], [...FAMILY_DB_MIGRATIONS, NICKNAMES]];
    return [
      [],
      ...lists.map((migrations, i) => {
        const db = openFamilyDb(join(dir, `v${i + 1}.db`), pino({ level: 'silent' }), { migrations });
        try {
          return db.all<SchemaObject>(SCHEMA_SQL);
        } finally {
          db.close();
        }
      }),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Inspection {
  version: number;
  members: number;
}

/**
 * Checks a copy of what the killed child left on disk (memu.db and its write-ahead log;
 * the copy leaves the original's recovery to the next run) and returns its schema version
 * and how many members it holds.
 */
function inspect(device: Device, schemas: SchemaObject[][]): Inspection {
  // Killed before it created memu.db (a loaded machine starts node slowly): consistent
  // only on a device where nothing was ever committed.
  if (!existsSync(device.db)) {
    expect(device.committed.size, 'memu.db is missing although members were committed').toBe(0);
    return { version: 0, members: 0 };
  }
  const scratch = mkdtempSync(join(device.dir, 'inspect-'));
  const copy = join(scratch, 'memu.db');
  copyFileSync(device.db, copy);
  if (existsSync(`${device.db}-wal`)) copyFileSync(`${device.db}-wal`, `${copy}-wal`);
  const db = new Database(copy);
  const raw = { get: (sql: string) => db.prepare(sql).get(), all: (sql: string) => db.prepare(sql).all() };
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    expect(raw.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    expect(raw.all('PRAGMA foreign_key_check')).toEqual([]);
    const version = db.pragma('user_version', { simple: true }) as number;
    expect(raw.all(SCHEMA_SQL), `the schema at version ${version}`).toEqual(schemas[version]);
    if (version === 0) return { version, members: 0 };
    const names = [...FAMILY_DB_MIGRATIONS, NICKNAMES].slice(0, version).map((m) => ({ version: m.version, name: m.name }));
    expect(raw.all('SELECT version, name FROM schema_migrations ORDER BY version')).toEqual(names);

    const members = raw.all('SELECT id, username FROM members ORDER BY id') as { id: number; username: string }[];
    // Transactions commit in order, so what is there is member-001 … member-k.
    expect(members.map((m) => m.username)).toEqual(members.map((_, i) => memberName(i + 1)));
    const perMember = raw.all(
      `SELECT m.username,
              (SELECT group_concat(service, ',') FROM (SELECT service FROM service_accounts WHERE member_id = m.id ORDER BY service)) AS services,
              (SELECT count(*) FROM audit_log WHERE action = 'member.add' AND json_extract(detail, '$.member') = m.username) AS audits
         FROM members m ORDER BY m.id`,
    );
    expect(perMember).toEqual(members.map((m) => ({ username: m.username, services: 'immich,synapse', audits: 1 })));
    expect(raw.get('SELECT count(*) AS n FROM service_accounts')).toEqual({ n: 2 * members.length });
    expect(raw.get('SELECT count(*) AS n FROM audit_log')).toEqual({ n: members.length });
    if (version >= 2) {
      expect(raw.all("SELECT username FROM members WHERE nickname IS NOT 'nick-' || username")).toEqual([]);
      expect(raw.get('SELECT count(*) AS n FROM nickname_history')).toEqual({ n: members.length });
    }
    return { version, members: members.length };
  } finally {
    db.close();
  }
}

describe('memu.db survives a kill at any instant', () => {
  const dirs: string[] = [];
  let schemas: SchemaObject[][];
  let uninterruptedMs = 0;

  async function newDevice(): Promise<Device> {
    const dir = await mkdtemp(join(tmpdir(), 'memu-family-db-crash-'));
    dirs.push(dir);
    return { dir, db: join(dir, 'agent', 'memu.db'), log: join(dir, 'agent.log'), committed: new Set() };
  }

  /** A run that is not killed: it completes every member. */
  async function completes(device: Device, count: number, secondMigration = false): Promise<ChildResult> {
    const result = await runWriter(device, count, { secondMigration });
    expect(result.code, result.stderr).toBe(0);
    expect(result.done).toBe(true);
    expect(inspect(device, schemas).members).toBe(count);
    return result;
  }

  /** After a kill: consistent, and nothing the child reported committed is missing. */
  function afterKill(device: Device, result: ChildResult, what: string): Inspection {
    expect(result.signal, `no kill at ${what}: ${result.stderr}`).toBe('SIGKILL');
    const seen = inspect(device, schemas);
    expect(seen.members, `after a kill at ${what}`).toBeGreaterThanOrEqual(device.committed.size);
    expect(seen.members, `after a kill at ${what}`).toBeLessThanOrEqual(device.committed.size + 1);
    return seen;
  }

  beforeAll(async () => {
    schemas = await referenceSchemas();
    uninterruptedMs = (await completes(await newDevice(), RANDOM_MEMBERS)).activeMs;
  });

  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it(`killed at each of the ${MIGRATION_POINTS.length} points of migration 1 on a new file, it is at version 0 or 1, never between`, async () => {
    const device = await newDevice();
    for (const point of MIGRATION_POINTS) {
      const result = await runWriter(device, MEMBERS, { crashAt: `migration:1-initial-schema:${point}` });
      const seen = afterKill(device, result, point);
      expect(seen, point).toEqual({ version: point === 'after-commit' ? 1 : 0, members: 0 });
    }
    await completes(device, MEMBERS);
  });

  it(`killed at each of the ${MIGRATION_POINTS.length} points of a migration that rewrites every member, it is wholly before or after it`, async () => {
    const device = await newDevice();
    await completes(device, MEMBERS);
    for (const point of MIGRATION_POINTS) {
      const result = await runWriter(device, MEMBERS + 10, { crashAt: `migration:2-member-nicknames:${point}`, secondMigration: true });
      const seen = afterKill(device, result, point);
      expect(seen, point).toEqual({ version: point === 'after-commit' ? 2 : 1, members: MEMBERS });
    }
    await completes(device, MEMBERS + 10, true);
  });

  const TX_POINTS = [...TRANSACTION_POINTS.map((p) => `transaction:${p}`), WRITER_POINT];
  it(`killed at each of ${TX_POINTS.length} points of the first and of a later transaction, every transaction is wholly there or absent`, async () => {
    const device = await newDevice();
    let kills = 0;
    for (const nth of [1, 7]) {
      for (const point of TX_POINTS) {
        const before = device.committed.size;
        const result = await runWriter(device, MEMBERS, { crashAt: point, nth });
        const seen = afterKill(device, result, `${point} #${nth}`);
        kills++;
        // Only a kill after COMMIT leaves the transaction it interrupted in place.
        expect(seen.members, `${point} #${nth}`).toBe(before + nth - 1 + (point === 'transaction:after-commit' ? 1 : 0));
        expect(device.committed.size).toBe(before + nth - 1);
        if (seen.members > device.committed.size) device.committed.add(memberName(seen.members));
      }
    }
    await completes(device, MEMBERS);
    expect(kills).toBe(2 * TX_POINTS.length);
  });

  it('killed at random times, it stays consistent and then completes', async () => {
    const seed = Number(process.env.MEMU_TEST_SEED ?? Date.now() % 100_000);
    let state = seed;
    const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let device = await newDevice();
    const kills: number[] = [];
    let midWrite = 0;
    // Run time depends on machine load: a kill that lands after a run already finished
    // proves nothing, so that device is set aside and a fresh one is killed earlier.
    let scale = 1;
    for (let attempt = 0; attempt < 12; attempt++) {
      const delay = Math.round(uninterruptedMs * scale * random());
      const result = await runWriter(device, RANDOM_MEMBERS, { killAfterMs: delay });
      if (result.signal === 'SIGKILL') {
        const seen = afterKill(device, result, `${delay} ms (seed ${seed})`);
        if (seen.members > device.committed.size) device.committed.add(memberName(seen.members));
        if (result.committed.length > 0) midWrite++;
        kills.push(delay);
        continue;
      }
      expect(result.code, `seed ${seed}: ${result.stderr}`).toBe(0);
      if (kills.length > 0) break;
      device = await newDevice();
      scale /= 2;
    }
    expect(kills.length, `seed ${seed}`).toBeGreaterThan(0);
    expect(midWrite, `seed ${seed}: no kill landed while members were being written (kills at ${kills.join(', ')} ms)`).toBeGreaterThan(0);
    await completes(device, RANDOM_MEMBERS);
  });
});
