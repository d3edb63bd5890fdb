import { closeSync, constants, existsSync, fsyncSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { SQLITE_ADDON_NAME } from '../../shared/contracts/agent-install.ts';
import { checkMigrationList, migrate } from './migrate.ts';
import { FAMILY_DB_MIGRATIONS, type Migration } from './migrations.ts';

export type SqlValue = string | number | bigint | Buffer | null;
/** Positional (`?`) values, or named ones keyed without their prefix: `{ name: 'Ada' }` for `:name`, `@name` or `$name`. */
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
  /** How long opening waits for another process's lock; LOCK_WAIT_MS unless a test shortens it. */
  lockWaitMs?: number;
}

export const TRANSACTION_POINTS = ['after-begin', 'before-commit', 'after-commit'] as const;
/** A migration's points: those of its transaction, and `after-sql` once its statements ran. */
export const MIGRATION_POINTS = ['after-begin', 'after-sql', 'before-commit', 'after-commit'] as const;

/** Where memu.db lives: on the data partition, beside the agent's other state. */
export function familyDbPath(dataDir: string): string {
  return join(dataDir, 'agent', 'memu.db');
}

type Database = Database.Database;
type Statement = Database.Statement<unknown[], unknown>;

/**
 * In the image, better-sqlite3's compiled addon sits beside the agent's bundle
 * (image/pipeline/agent-bundle.ts), where the package's own lookup would not find it;
 * run from source, the package finds its own build.
 */
function addonBesideBundle(): string | undefined {
  const path = fileURLToPath(new URL(SQLITE_ADDON_NAME, import.meta.url));
  return existsSync(path) ? path : undefined;
}

/** How long opening waits for another process's lock: an agent being replaced lets go within this. */
export const LOCK_WAIT_MS = 5000;

/** Statements compiled once per connection: the SQL is fixed text in the code, so the set stays small. */
const STATEMENT_CACHE_LIMIT = 200;

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
  private readonly statements = new Map<string, Statement>();

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

  private statement(sql: string): Statement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      if (this.statements.size >= STATEMENT_CACHE_LIMIT) this.statements.clear();
      stmt = this.open().prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  fault(point: string): void {
    void this.faultInjection?.(point);
  }

  exec(sql: string): void {
    this.open().exec(sql);
  }

  run(sql: string, params?: SqlParams): RunResult {
    return this.statement(sql).run(...bindings(params));
  }

  get<T extends object>(sql: string, params?: SqlParams): T | undefined {
    return this.statement(sql).get(...bindings(params)) as T | undefined;
  }

  all<T extends object>(sql: string, params?: SqlParams): T[] {
    return this.statement(sql).all(...bindings(params)) as T[];
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
    this.statements.clear();
    db.close();
  }
}

/** better-sqlite3 takes positional values as arguments and named ones as one object. */
function bindings(params: SqlParams | undefined): unknown[] {
  if (params === undefined) return [];
  return Array.isArray(params) ? [...params] : [params];
}

/** Sets a pragma and reads back what SQLite made of it: a setting it refused is an error, not a silent fallback. */
function pragma(db: Database, path: string, name: string, value: string, expect: string | number): void {
  db.pragma(`${name} = ${value}`);
  const actual: unknown = db.pragma(name, { simple: true });
  if (actual !== expect) throw new Error(`${path}: PRAGMA ${name} = ${value} gave ${String(actual)}, not ${expect}`);
}

/**
 * Opens (creating if needed) memu.db, brings its schema up to date, and returns it.
 *
 * Durability: WAL with synchronous=FULL, so every commit is fsynced before
 * `transaction` returns. locking_mode=EXCLUSIVE, set before the first access, holds the
 * file for the connection's life (and keeps the write-ahead log's index in the agent's
 * memory, no `-shm` file): the agent is the only process that opens memu.db, and a second
 * agent started by mistake is refused rather than interleaved. The lock is SQLite's POSIX
 * lock, which the kernel releases when a process dies, so a killed agent leaves nothing
 * behind that stops the next one.
 */
export function openFamilyDb(path: string, log: Logger, opts: FamilyDbOptions = {}): FamilyDb {
  const started = Date.now();
  const migrations = opts.migrations ?? FAMILY_DB_MIGRATIONS;
  checkMigrationList(migrations);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // SQLite gives the write-ahead log the database file's mode: create it readable by root alone.
  closeSync(openSync(path, constants.O_CREAT | constants.O_WRONLY, 0o600));
  const lockWaitMs = opts.lockWaitMs ?? LOCK_WAIT_MS;
  let db: Database;
  try {
    const nativeBinding = addonBesideBundle();
    db = new Database(path, { timeout: lockWaitMs, ...(nativeBinding ? { nativeBinding } : {}) });
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
      if (message === 'database is locked') throw new Error(`${path} is locked by another process: is a second memu-agent running? (waited ${lockWaitMs / 1000} s)`);
      throw new Error(`cannot open ${path}: ${message}`);
    }
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
