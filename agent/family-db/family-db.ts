import { closeSync, constants, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
// CommonJS whose exports are set at run time: only the default import sees them.
import nodeSqlite from 'node-sqlite3-wasm';
import type { Logger } from 'pino';
import { checkMigrationList, migrate } from './migrate.ts';
import { FAMILY_DB_MIGRATIONS, type Migration } from './migrations.ts';
import { clearStaleLock, lockPaths, recordLockHolder, removeLockHolder } from './stale-lock.ts';

export type SqlValue = string | number | bigint | Uint8Array | null;
/** Positional (`?`) values, or named ones keyed with their prefix: `{ ':name': 'Ada' }`. */
export type SqlParams = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

/** memu.db: the family's SQLite database on the data partition, opened once by the agent. */
export interface FamilyDb {
  readonly path: string;
  run(sql: string, params?: SqlParams): RunResult;
  /** The first row, or undefined when there is none. */
  get<T extends object>(sql: string, params?: SqlParams): T | undefined;
  all<T extends object>(sql: string, params?: SqlParams): T[];
  /**
   * Runs `fn` in one transaction (BEGIN IMMEDIATE … COMMIT) and returns what it returns;
   * rolls back and rethrows when it throws. `fn` is synchronous, as every statement is:
   * a function returning a promise is refused, since its awaited work would land outside
   * the transaction. Transactions do not nest.
   */
  transaction<T>(fn: () => T): T;
  /** The number of the last migration applied (`PRAGMA user_version`). */
  schemaVersion(): number;
  /** Checkpoints the write-ahead log into the file and releases it; further calls do nothing. */
  close(): void;
}

export interface FamilyDbOptions {
  /**
   * Test hook, called at named points (TRANSACTION_POINTS after `transaction:`, and
   * `migration:<version>-<name>:` with MIGRATION_POINTS) so a crash test can kill the
   * process exactly there. Called synchronously, like every statement: a promise it
   * returns is not awaited. Production leaves it undefined.
   */
  faultInjection?: (point: string) => void | Promise<void>;
  /** The schema's migrations; tests give their own lists. */
  migrations?: readonly Migration[];
}

export const TRANSACTION_POINTS = ['after-begin', 'before-commit', 'after-commit'] as const;
/** A migration's points: those of its transaction, and `after-sql` once its statements ran. */
export const MIGRATION_POINTS = ['after-begin', 'after-sql', 'before-commit', 'after-commit'] as const;

/** Where memu.db lives: on the data partition, beside the agent's other state. */
export function familyDbPath(dataDir: string): string {
  return join(dataDir, 'agent', 'memu.db');
}

const { Database } = nodeSqlite;
type Database = InstanceType<typeof Database>;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function fsyncDirectory(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The connection behind FamilyDb, with what the migration runner needs besides. */
export class FamilyDbConnection implements FamilyDb {
  private db: Database | undefined;
  private holdsLock = false;

  constructor(
    readonly path: string,
    db: Database,
    private readonly faultInjection: FamilyDbOptions['faultInjection'],
  ) {
    this.db = db;
  }

  private open(): Database {
    if (!this.db) throw new Error(`${this.path} is closed`);
    return this.db;
  }

  /** Once the first access took the lock: records this process as its holder. */
  lockTaken(): void {
    recordLockHolder(this.path);
    this.holdsLock = true;
  }

  fault(point: string): void {
    void this.faultInjection?.(point);
  }

  exec(sql: string): void {
    this.open().exec(sql);
  }

  run(sql: string, params?: SqlParams): RunResult {
    return this.open().run(sql, params as Parameters<Database['run']>[1]);
  }

  get<T extends object>(sql: string, params?: SqlParams): T | undefined {
    return (this.open().get(sql, params as Parameters<Database['get']>[1]) as T | null) ?? undefined;
  }

  all<T extends object>(sql: string, params?: SqlParams): T[] {
    return this.open().all(sql, params as Parameters<Database['all']>[1]) as T[];
  }

  transaction<T>(fn: () => T): T {
    return this.transactionAt('transaction', fn);
  }

  /** A transaction whose fault points are named `<prefix>:after-begin` and so on. */
  transactionAt<T>(prefix: string, fn: () => T): T {
    const db = this.open();
    if (db.inTransaction) throw new Error(`${this.path}: transactions do not nest; run the inner work in the outer transaction`);
    db.exec('BEGIN IMMEDIATE');
    let result: T;
    try {
      this.fault(`${prefix}:after-begin`);
      result = fn();
      if (isThenable(result)) {
        Promise.resolve(result).catch(() => {});
        throw new TypeError(`${this.path}: a transaction's function must be synchronous; it returned a promise`);
      }
      this.fault(`${prefix}:before-commit`);
      db.exec('COMMIT');
    } catch (err) {
      // A failed COMMIT can leave the transaction open; an I/O error may have ended it already.
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // The error that made us roll back says more than this one.
        }
      }
      throw err;
    }
    this.fault(`${prefix}:after-commit`);
    return result;
  }

  schemaVersion(): number {
    return this.get<{ user_version: number }>('PRAGMA user_version')!.user_version;
  }

  close(): void {
    if (!this.db) return;
    const db = this.db;
    this.db = undefined;
    db.close();
    if (this.holdsLock) removeLockHolder(this.path);
  }
}

/** Sets a pragma and reads back what SQLite made of it: a setting it refused is an error, not a silent fallback. */
function pragma(db: Database, path: string, name: string, value: string, expect: string | number): void {
  const row = db.get(`PRAGMA ${name} = ${value}`) ?? db.get(`PRAGMA ${name}`);
  const actual = row ? Object.values(row)[0] : undefined;
  if (actual !== expect) throw new Error(`${path}: PRAGMA ${name} = ${value} gave ${String(actual)}, not ${expect}`);
}

/**
 * Opens (creating if needed) memu.db, brings its schema up to date, and returns it.
 *
 * Durability: WAL with synchronous=FULL, so every commit is fsynced before
 * `transaction` returns. node-sqlite3-wasm's VFS has no shared memory, so WAL needs
 * locking_mode=EXCLUSIVE, set before the first access (SQLite, "WAL without shared
 * memory"): the agent is the only process that opens memu.db and holds it for its whole
 * life, so the lock shuts out nobody. A lock left by a killed agent is cleared first
 * (stale-lock.ts).
 */
export function openFamilyDb(path: string, log: Logger, opts: FamilyDbOptions = {}): FamilyDb {
  const started = Date.now();
  const migrations = opts.migrations ?? FAMILY_DB_MIGRATIONS;
  checkMigrationList(migrations);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  clearStaleLock(path, log);
  let db: Database;
  try {
    db = new Database(path);
  } catch (err) {
    throw new Error(`cannot open ${path}: ${(err as Error).message}`);
  }
  const conn = new FamilyDbConnection(path, db, opts.faultInjection);
  try {
    pragma(db, path, 'locking_mode', 'EXCLUSIVE', 'exclusive');
    try {
      // The first access: it takes the lock, which this connection then holds until close.
      pragma(db, path, 'journal_mode', 'WAL', 'wal');
    } catch (err) {
      const message = (err as Error).message;
      if (message === 'database is locked') throw new Error(`${path} is locked by another process (${lockPaths(path).lockDir} exists)`);
      throw new Error(`cannot open ${path}: ${message}`);
    }
    conn.lockTaken();
    pragma(db, path, 'synchronous', 'FULL', 2);
    pragma(db, path, 'foreign_keys', 'ON', 1);
    const applied = migrate(conn, migrations, log);
    // The database and its write-ahead log exist now: make their names survive a power cut.
    fsyncDirectory(dirname(path));
    log.info({ path, schemaVersion: conn.schemaVersion(), migrated: applied, ms: Date.now() - started }, 'memu.db open');
    return conn;
  } catch (err) {
    try {
      conn.close();
    } catch (closeErr) {
      log.warn({ err: closeErr, path }, 'closing memu.db after a failed open failed too');
    }
    throw err;
  }
}
