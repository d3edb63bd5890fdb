import type { Logger } from 'pino';
import type { Migration } from './migrations.ts';

/** What migrating needs of the connection (FamilyDbConnection is one). */
export interface MigrationTarget {
  readonly path: string;
  exec(sql: string): void;
  run(sql: string, params: readonly (string | number)[]): unknown;
  get<T extends object>(sql: string): T | undefined;
  all<T extends object>(sql: string): T[];
  schemaVersion(): number;
  transactionAt<T>(prefix: string, fn: () => T): T;
  fault(point: string): void;
}

const SCHEMA_MIGRATIONS = /* sql */ `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY CHECK (version >= 1),
  name       TEXT    NOT NULL UNIQUE,
  applied_at INTEGER NOT NULL
) STRICT`;

/** The list itself must be 1, 2, 3 … with distinct names: a mistake there is the code's, to be caught before touching the file. */
export function checkMigrationList(migrations: readonly Migration[]): void {
  const names = new Set<string>();
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration "${m.name}" has version ${m.version} at position ${i + 1}: versions run 1, 2, 3 … in list order`);
    if (!/^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(m.name)) throw new Error(`migration ${m.version} has the name "${m.name}": use lowercase words joined by dashes`);
    if (names.has(m.name)) throw new Error(`two migrations are named "${m.name}"`);
    names.add(m.name);
  });
}

/**
 * Brings the database to the last migration of `migrations`, each in its own
 * transaction that also records it in schema_migrations and sets user_version, so a
 * crash leaves the version before or after a migration, never between. Refuses a
 * database written by a newer agent (a migration this one does not know), or one whose
 * recorded history differs from this list. Returns the names of the migrations applied.
 */
export function migrate(conn: MigrationTarget, migrations: readonly Migration[], log: Logger): string[] {
  const known = migrations.length;
  const hasTable = conn.get("SELECT 1 AS found FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'") !== undefined;
  const recorded = hasTable ? conn.all<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version') : [];
  const userVersion = conn.schemaVersion();
  const last = recorded.at(-1);
  const recordedVersion = last?.version ?? 0;

  if (recordedVersion > known || userVersion > known) {
    const version = Math.max(recordedVersion, userVersion);
    throw new Error(
      `${conn.path} is at schema version ${version}${last && last.version === version ? ` ("${last.name}")` : ''}, but this agent knows versions up to ${known}: ` +
        'it was written by a newer memu-agent. Refusing to open it, since this agent could damage what it does not know; run the newer agent (or restore a backup made by this one).',
    );
  }
  recorded.forEach((r, i) => {
    const ours = migrations[i];
    if (r.version !== i + 1 || ours?.name !== r.name) {
      throw new Error(`${conn.path} records migration ${r.version} "${r.name}" where this agent has ${i + 1} "${ours?.name}": it comes from another schema history; refusing to open it`);
    }
  });
  if (userVersion !== recordedVersion) {
    throw new Error(`${conn.path} has user_version ${userVersion} but its last recorded migration is ${recordedVersion}: it was changed by something other than memu-agent; refusing to open it`);
  }
  if (recordedVersion === 0) {
    const objects = conn.get<{ n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")!.n;
    if (objects > 0) throw new Error(`${conn.path} holds ${objects} tables or indexes but no schema_migrations: it is not a memu.db; refusing to open it`);
  }

  const applied: string[] = [];
  for (const m of migrations.slice(recordedVersion)) {
    const prefix = `migration:${m.version}-${m.name}`;
    const started = Date.now();
    conn.transactionAt(prefix, () => {
      conn.exec(SCHEMA_MIGRATIONS);
      conn.exec(m.sql);
      conn.fault(`${prefix}:after-sql`);
      const broken = conn.all<{ table: string; parent: string }>('PRAGMA foreign_key_check');
      if (broken.length > 0) {
        throw new Error(`migration ${m.version} "${m.name}" leaves ${broken.length} rows whose foreign keys point nowhere (first: ${broken[0]!.table} -> ${broken[0]!.parent})`);
      }
      conn.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
      // PRAGMA takes no bound values; the version is a checked integer.
      conn.exec(`PRAGMA user_version = ${m.version}`);
    });
    log.info({ version: m.version, name: m.name, ms: Date.now() - started }, 'memu.db migrated');
    applied.push(m.name);
  }
  return applied;
}
