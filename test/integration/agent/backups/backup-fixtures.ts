import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Logger } from 'pino';
import { createBackupService, type BackupEngineOptions, type BackupService, type BackupServiceOptions, type DatabaseDumpSource, type RestoreCommand } from '../../../../agent/backups/index.ts';
import { createMaintenanceLock } from '../../../../agent/maintenance/index.ts';
import type { FamilyDb } from '../../../../agent/family-db/index.ts';
import { PG_BIN, type PostgresCluster } from '../../../helpers/postgres.ts';
import { isRoot } from '../../../helpers/prerequisites.ts';

/**
 * What the backup engine's integration tests share: the prerequisites (checked, never
 * skipped), a family's data (two databases with several tables, a photo tree, memu.db
 * rows), and the fingerprints a restore must reproduce exactly.
 */

/**
 * Fails with what is missing and how to get it. These tests never skip: a backup
 * engine whose restores were not tried proves nothing.
 */
export function requireBackupPrerequisites(): void {
  const missing: string[] = [];
  if (!isRoot) missing.push('root (the PostgreSQL cluster runs as the postgres user; the full-target test mounts a tmpfs)');
  let version: string | undefined;
  try {
    version = /"version":"([^"]+)"/.exec(execFileSync('restic', ['version', '--json'], { encoding: 'utf8' }))?.[1];
  } catch {
    version = undefined;
  }
  if (!version) missing.push('restic (run scripts/setup-host: it installs restic 0.18 from Debian trixie)');
  else if (!/^(0\.(1[7-9]|[2-9][0-9])|[1-9])/.test(version)) missing.push(`restic 0.17 or newer (this is ${version}; run scripts/setup-host)`);
  for (const tool of ['pg_dump', 'pg_restore', 'initdb']) {
    if (!existsSync(join(PG_BIN, tool))) missing.push(`${join(PG_BIN, tool)} (Debian's postgresql-15; run scripts/setup-host)`);
  }
  if (missing.length > 0) throw new Error(`the backup tests need ${missing.join('; ')}`);
}

export const DATABASES = ['synapse', 'immich'] as const;

/** Two databases shaped like the stack's: text, jsonb, bytea, uuids, foreign keys, sequences. */
export async function createFamilyDatabases(pg: PostgresCluster): Promise<void> {
  for (const name of DATABASES) await pg.query(`CREATE DATABASE ${name}`);
  await pg.query(
    `CREATE TABLE users (name text PRIMARY KEY, password_hash text NOT NULL, creation_ts bigint NOT NULL, admin boolean NOT NULL, avatar bytea);
     INSERT INTO users SELECT '@user' || i || ':memu.local', md5(i::text), 1700000000 + i, i % 50 = 0, decode(md5('a' || i), 'hex') FROM generate_series(1, 400) i;
     CREATE TABLE rooms (room_id text PRIMARY KEY, creator text NOT NULL REFERENCES users (name), is_public boolean NOT NULL);
     INSERT INTO rooms SELECT '!room' || i || ':memu.local', '@user' || (1 + i % 400) || ':memu.local', i % 3 = 0 FROM generate_series(1, 150) i;
     CREATE TABLE events (stream_ordering bigserial PRIMARY KEY, room_id text NOT NULL REFERENCES rooms (room_id), sender text NOT NULL,
       type text NOT NULL, content jsonb NOT NULL, origin_server_ts bigint NOT NULL);
     INSERT INTO events (room_id, sender, type, content, origin_server_ts)
       SELECT '!room' || (1 + i % 150) || ':memu.local', '@user' || (1 + i % 400) || ':memu.local', 'm.room.message',
              jsonb_build_object('msgtype', 'm.text', 'body', 'message ' || i || ' ' || md5(i::text)), 1700000000000 + i * 1000
       FROM generate_series(1, 20000) i;
     CREATE INDEX events_by_room ON events (room_id, stream_ordering);`,
    'synapse',
  );
  await pg.query(
    `CREATE TABLE assets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), original_path text NOT NULL, checksum bytea NOT NULL,
       taken_at timestamptz NOT NULL, exif jsonb);
     INSERT INTO assets (original_path, checksum, taken_at, exif)
       SELECT '/photos/library/' || i || '.jpg', sha256(i::text::bytea), timestamptz '2024-01-01' + i * interval '1 hour',
              jsonb_build_object('make', 'Memu', 'iso', 100 + i % 800)
       FROM generate_series(1, 5000) i;
     CREATE TABLE albums (id serial PRIMARY KEY, name text NOT NULL);
     INSERT INTO albums (name) SELECT 'Album ' || i FROM generate_series(1, 30) i;
     CREATE TABLE album_assets (album_id int NOT NULL REFERENCES albums (id), asset_id uuid NOT NULL REFERENCES assets (id), PRIMARY KEY (album_id, asset_id));
     INSERT INTO album_assets SELECT 1 + (row_number() OVER () % 30), id FROM assets;`,
    'immich',
  );
}

/** Per table: rows and an md5 over every row in a fixed order; and each sequence's position. */
export async function databaseFingerprint(pg: PostgresCluster, database: string): Promise<Record<string, string>> {
  const tables = (await pg.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1", database)).split('\n').filter(Boolean);
  const print: Record<string, string> = {};
  for (const t of tables) {
    print[t] = await pg.query(`SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM ${t} x`, database);
  }
  for (const s of (await pg.query("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1", database)).split('\n').filter(Boolean)) {
    print[`sequence ${s}`] = await pg.query(`SELECT last_value FROM ${s}`, database);
  }
  return print;
}

export function dumpSource(pg: PostgresCluster, database: string): DatabaseDumpSource {
  return {
    name: database,
    command: [join(PG_BIN, 'pg_dump'), '--host=127.0.0.1', `--port=${pg.port}`, '--username=postgres', '--format=custom', database],
    env: { PGPASSWORD: pg.superuserPassword },
  };
}

export function restoreInto(pg: PostgresCluster, database: string): RestoreCommand {
  return {
    command: [join(PG_BIN, 'pg_restore'), '--host=127.0.0.1', `--port=${pg.port}`, '--username=postgres', `--dbname=${database}`, '--exit-on-error', '--no-owner'],
    env: { PGPASSWORD: pg.superuserPassword },
  };
}

/** What the device backs up under its data directory. */
export const FILE_PATHS = ['photos', 'synapse/media', 'config', 'secrets'];

/**
 * A family's files under `baseDir`: `photos` photos of 8–64 KiB of random bytes (as
 * incompressible as JPEGs) in year/month folders, Synapse media, config and secrets.
 */
export async function createFamilyFiles(baseDir: string, photos = 320): Promise<void> {
  for (let i = 0; i < photos; i++) {
    const dir = join(baseDir, 'photos', 'library', String(2020 + (i % 5)), String(1 + (i % 12)).padStart(2, '0'));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `IMG_${String(i).padStart(4, '0')}.jpg`), randomBytes(8192 + ((i * 7919) % 57344)));
  }
  const media = join(baseDir, 'synapse', 'media', 'local_content');
  await mkdir(media, { recursive: true });
  for (let i = 0; i < 40; i++) await writeFile(join(media, `media-${i}`), randomBytes(4096 + i * 100));
  await mkdir(join(baseDir, 'config'), { recursive: true });
  await writeFile(join(baseDir, 'config', 'stack.env'), 'MEMU_DOMAIN=memu.local\n');
  await writeFile(join(baseDir, 'config', 'homeserver.yaml'), 'server_name: memu.local\n');
  await mkdir(join(baseDir, 'secrets'), { recursive: true, mode: 0o700 });
  await writeFile(join(baseDir, 'secrets', 'stack-secrets.json'), `{"postgresPassword":"${randomBytes(16).toString('hex')}"}\n`, { mode: 0o600 });
}

/** Every regular file under `dir` (relative path → SHA-256). */
export async function treeHashes(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) out[relative(dir, path)] = createHash('sha256').update(await readFile(path)).digest('hex');
    }
  };
  if (existsSync(dir)) await walk(dir);
  return out;
}

/** The hashes of the backed-up paths only (not memu.db, the staging directory or the cache). */
export async function familyFileHashes(baseDir: string): Promise<Record<string, string>> {
  const all: Record<string, string> = {};
  for (const p of FILE_PATHS) {
    for (const [rel, hash] of Object.entries(await treeHashes(join(baseDir, p)))) all[join(p, rel)] = hash;
  }
  return all;
}

/** A few members with their service accounts and audit rows, as the wizard would write them. */
export function addFamilyRows(db: FamilyDb, names: readonly string[]): void {
  for (const name of names) {
    db.transaction(() => {
      const id = db.run('INSERT INTO members (username, display_name, created_at) VALUES (?, ?, ?)', [name, name.toUpperCase(), 1_760_000_000_000]).lastInsertRowid;
      db.run("INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (?, 'synapse', 'pending', 1)", [id]);
      db.run("INSERT INTO service_accounts (member_id, service, state, updated_at) VALUES (?, 'immich', 'pending', 1)", [id]);
      db.run("INSERT INTO audit_log (at, actor, action, detail) VALUES (1, 'system', 'member.add', json_object('member', ?))", [name]);
    });
  }
}

export function familyRows(db: FamilyDb): unknown {
  return {
    members: db.all('SELECT id, username, display_name, created_at, removed_at FROM members ORDER BY id'),
    accounts: db.all('SELECT member_id, service, state FROM service_accounts ORDER BY member_id, service'),
    audit: db.all('SELECT id, action, detail FROM audit_log ORDER BY id'),
    schemaVersion: db.schemaVersion(),
  };
}

/** The engine's paths for a device whose data directory is `baseDir`, with the repository password at `passwordFile`. */
export function engineOptions(baseDir: string, passwordFile: string, log: Logger, extra: Partial<BackupEngineOptions> = {}): BackupEngineOptions {
  return {
    passwordFile,
    cacheDir: join(baseDir, 'cache', 'restic'),
    stagingDir: join(baseDir, 'agent', 'backup-staging'),
    stateDir: join(baseDir, 'agent', 'backups'),
    log,
    progressFps: 4,
    ...extra,
  };
}

/**
 * A backup service over `dataDir` with nothing around it: its own maintenance lock, a stack
 * hold that holds nothing, no databases, no memu.db, and a schedule that never ticks in a
 * test's time; `extra` adds or replaces any of it.
 */
export function testBackupService(dataDir: string, log: Logger, extra: Partial<BackupServiceOptions> = {}): BackupService {
  return createBackupService(
    {
      dataDir,
      lock: createMaintenanceLock(),
      stack: { runExclusive: (_reason, fn) => fn() },
      databases: async () => [],
      familyDb: () => undefined,
      host: async () => 'memu-test',
      stackVersions: () => ({ memuOs: '0.1.0-test' }),
      tickMs: 3600_000,
      ...extra,
    },
    log,
  );
}
