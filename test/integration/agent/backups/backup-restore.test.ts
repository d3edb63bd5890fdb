import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackupSetIncompleteError,
  DumpFailedError,
  ensureBackupPassword,
  initBackupRepository,
  ItemNotFoundError,
  openBackupRepository,
  RepositoryDamagedError,
  RepositoryNotFoundError,
  RepositoryUnreachableError,
  TargetFullError,
  WrongPasswordError,
  type BackupProgress,
  type BackupRepository,
  type BackupRunRequest,
} from '../../../../agent/backups/index.ts';
import { familyDbPath, openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { PG_BIN, startPostgres, type PostgresCluster } from '../../../helpers/postgres.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';
import {
  addFamilyRows,
  createFamilyDatabases,
  createFamilyFiles,
  databaseFingerprint,
  DATABASES,
  dumpSource,
  engineOptions,
  FILE_PATHS,
  familyFileHashes,
  familyRows,
  requireBackupPrerequisites,
  restoreInto,
  treeHashes,
} from './backup-fixtures.ts';

/**
 * The backup engine against real restic and a real PostgreSQL 15: a family's databases,
 * photos and memu.db are backed up, wiped and restored identically; a second run is
 * incremental; sets are kept and forgotten whole; and each failure the family can meet
 * (a dump that breaks, a wrong password, an unreachable server, a full drive, a damaged
 * pack) is the typed error with its sentence, with earlier backups intact.
 */
const PG_PORT = 18160;
const UNREACHABLE_REST = 'rest:http://127.0.0.1:18169/';
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });

let pg: PostgresCluster;
let work: string;
let baseDir: string;
let passwordFile: string;
let repoPath: string;
let repository: BackupRepository;
let db: FamilyDb | undefined;
const stack = { memuOs: '0.1.0', synapse: '1.119.0', immich: '1.123.0', postgres: '15' };

function request(extra: Partial<BackupRunRequest> = {}): BackupRunRequest {
  return {
    host: 'memu-test',
    stack,
    databases: DATABASES.map((d) => dumpSource(pg, d)),
    familyDb: db,
    files: { baseDir, paths: FILE_PATHS },
    ...extra,
  };
}

/** The repository's files and their sizes: what "nothing in it changed" is checked against. */
function repositoryListing(path: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!p.includes('/locks/')) out.push(`${p.slice(path.length)} ${statSync(p).size}`);
    }
  };
  walk(path);
  return out.sort();
}

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-backup-test-'));
  baseDir = join(work, 'data');
  passwordFile = join(baseDir, 'secrets-device', 'backup-repository-password');
  repoPath = join(work, 'usb', 'memu-backups');
  await mkdir(join(work, 'usb'), { recursive: true });
  pg = await startPostgres(PG_PORT);
  await createFamilyDatabases(pg);
  await createFamilyFiles(baseDir);
  db = openFamilyDb(familyDbPath(baseDir), log);
  addFamilyRows(db, ['ada', 'brian', 'chloe']);
  await ensureBackupPassword(passwordFile);
});

afterAll(async () => {
  db?.close();
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('backups with restic', () => {
  let first: { files: Record<string, string>; runId: string };
  let changedPhotos: string[];

  it('backs up two databases, memu.db and the photo tree as one set', async () => {
    const made = await initBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, passwordFile, log));
    expect(made.created).toBe(true);
    // Taking the repository again (an init that was interrupted) opens it instead.
    expect((await initBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, passwordFile, log))).created).toBe(false);
    repository = await openBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, passwordFile, log, { progressFps: 50 }));
    expect(repository.repositoryId).toBe(made.repository.repositoryId);

    const files = await familyFileHashes(baseDir);
    expect(Object.keys(files).length).toBe(320 + 40 + 2 + 1);
    const progress: BackupProgress[] = [];
    const result = await repository.backup(request({ onProgress: (p) => progress.push(p) }));
    first = { files, runId: result.set.runId };
    expect(result.set.complete).toBe(true);
    expect(result.set.snapshots.map((s) => s.kind)).toEqual(['database', 'database', 'final']);
    expect(result.manifest.databases.map((d) => d.name)).toEqual(['synapse', 'immich']);
    expect(result.manifest.files).toEqual({ baseDir, paths: FILE_PATHS, missingPaths: [] });
    expect(result.manifest.stack).toEqual(stack);
    expect(result.manifest.familyDb?.schemaVersion).toBe(db!.schemaVersion());
    expect(result.filesSummary.filesNew).toBe(Object.keys(files).length + 2); // with memu.db's copy and the manifest
    expect(result.warnings).toEqual([]);
    expect(progress.some((p) => p.stage === 'database' && p.database === 'synapse' && p.bytesDone > 0)).toBe(true);
    expect(progress.some((p) => p.stage === 'files' && p.bytesDone > 0)).toBe(true);
    for (const d of result.manifest.databases) console.log(`dump of ${d.name}: ${d.bytes} bytes in ${d.durationMs} ms (restic run, an upper bound on how long pg_dump held its locks)`);
    console.log(`first backup: ${result.durationMs} ms, ${result.set.bytesProcessed} bytes read, ${result.set.bytesAdded} added`);

    // The set as the repository lists it, and its manifest read back from it.
    const sets = await repository.listSets();
    expect(sets.map((s) => [s.runId, s.complete])).toEqual([[result.set.runId, true]]);
    expect((await repository.openSet('latest')).manifest).toEqual(result.manifest);
  });

  it('a second run after 1 % of the photos changed is incremental', async () => {
    const photos = Object.keys(await treeHashes(join(baseDir, 'photos'))).sort();
    changedPhotos = photos.filter((_, i) => i % 107 === 7).map((p) => join('photos', p));
    expect(changedPhotos).toHaveLength(3);
    for (const p of changedPhotos) writeFileSync(join(baseDir, p), `edited ${p}\n`.repeat(1000));
    addFamilyRows(db!, ['dmitri']);
    await pg.query("INSERT INTO events (room_id, sender, type, content, origin_server_ts) VALUES ('!room1:memu.local', '@user1:memu.local', 'm.room.message', '{\"body\": \"after the first backup\"}', 1)", 'synapse');
    const result = await repository.backup(request());
    const s = result.filesSummary;
    console.log(`incremental: ${result.durationMs} ms; files new ${s.filesNew}, changed ${s.filesChanged}, unmodified ${s.filesUnmodified}; ${s.dataAdded} bytes added`);
    // The 3 photos, memu.db's new copy and the new manifest; nothing else read as new.
    expect(s.filesNew + s.filesChanged).toBe(changedPhotos.length + 2);
    expect(s.filesUnmodified).toBe(s.totalFilesProcessed - changedPhotos.length - 2);
    expect(s.dataAdded).toBeLessThan(512 * 1024);
    expect((await repository.listSets()).filter((x) => x.complete)).toHaveLength(2);
  });

  it('after a wipe, restore brings back identical rows, per-table checksums, file hashes and memu.db rows', async () => {
    const dbs = Object.fromEntries(await Promise.all(DATABASES.map(async (d) => [d, await databaseFingerprint(pg, d)] as const)));
    expect(Object.keys(dbs.synapse!)).toEqual(['events', 'rooms', 'users', 'sequence events_stream_ordering_seq']);
    expect(dbs.synapse!.events).toMatch(/^20001 [0-9a-f]{32}$/);
    const files = await familyFileHashes(baseDir);
    const rows = familyRows(db!);
    const { manifest } = await repository.openSet('latest');

    // Wipe everything: the databases, the files, memu.db.
    db!.close();
    db = undefined;
    for (const d of DATABASES) {
      await pg.query(`DROP DATABASE ${d} WITH (FORCE)`);
      await pg.query(`CREATE DATABASE ${d}`);
    }
    for (const p of ['photos', 'synapse', 'config', 'secrets']) rmSync(join(baseDir, p), { recursive: true, force: true });
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${familyDbPath(baseDir)}${suffix}`, { force: true });
    expect(await familyFileHashes(baseDir)).toEqual({});
    expect(await pg.query('SELECT count(*) FROM pg_tables WHERE schemaname = \'public\'', 'synapse')).toBe('0');

    const started = Date.now();
    for (const d of DATABASES) {
      const restored = await repository.restoreDatabase('latest', d, restoreInto(pg, d));
      expect(restored.bytes).toBe(manifest.databases.find((x) => x.name === d)!.bytes);
    }
    const summary = await repository.restoreFiles('latest', baseDir, { verify: true });
    expect(summary.filesRestored).toBeGreaterThanOrEqual(Object.keys(files).length);
    await repository.restoreFamilyDb('latest', familyDbPath(baseDir));
    console.log(`restore of both databases, the files and memu.db: ${Date.now() - started} ms`);

    for (const d of DATABASES) expect(await databaseFingerprint(pg, d), d).toEqual(dbs[d]);
    expect(await familyFileHashes(baseDir)).toEqual(files);
    expect(statSync(familyDbPath(baseDir)).mode & 0o777).toBe(0o600);
    db = openFamilyDb(familyDbPath(baseDir), log);
    expect(familyRows(db)).toEqual(rows);
  });

  it('restores a single file or folder from a chosen set, and says when the set has no such path', async () => {
    // A photo changed after the first set: the first set gives back the old one.
    const target = await tempDir('memu-backup-item-');
    const photo = changedPhotos[0]!;
    await repository.restoreItem(first.runId, photo, target);
    expect(await treeHashes(target)).toEqual({ [photo]: first.files[photo] });
    expect(first.files[photo]).not.toBe((await familyFileHashes(baseDir))[photo]);
    const folder = await tempDir('memu-backup-folder-');
    await repository.restoreItem(first.runId, 'synapse/media', folder);
    const media = Object.fromEntries(Object.entries(first.files).filter(([p]) => p.startsWith('synapse/media/')));
    expect(await treeHashes(folder)).toEqual(media);
    await expect(repository.restoreItem(first.runId, 'photos/not-there.jpg', target)).rejects.toThrow(ItemNotFoundError);
    await expect(repository.restoreItem(first.runId, '../etc/passwd', target)).rejects.toThrow(/holds nothing at \.\.\/etc\/passwd/);
  });

  it('a dump that fails half-way fails the run: no complete set is recorded, earlier sets stay restorable', async () => {
    const before = await repository.listSets();
    const broken = {
      name: 'immich',
      // pg_dump's output cut after 20 kB, as when its connection drops mid-dump.
      command: ['bash', '-c', `set -o pipefail; ${join(PG_BIN, 'pg_dump')} --host=127.0.0.1 --port=${pg.port} --username=postgres --format=custom immich | head -c 20000`],
      env: { PGPASSWORD: pg.superuserPassword },
    };
    const error = await repository.backup(request({ databases: [dumpSource(pg, 'synapse'), broken] })).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DumpFailedError);
    expect((error as Error).message).toBe(
      'The dump of database immich failed before it finished. This run recorded no backup set; earlier backups are intact. Check that the database is running and the dump command works (its message is below), then back up again.',
    );
    const after = await repository.listSets();
    expect(after.filter((s) => s.complete).map((s) => s.runId)).toEqual(before.filter((s) => s.complete).map((s) => s.runId));
    const incomplete = after.filter((s) => !s.complete);
    expect(incomplete).toHaveLength(1);
    expect(incomplete[0]!.snapshots.map((s) => s.database)).toEqual(['synapse']);
    await expect(repository.openSet(incomplete[0]!.runId)).rejects.toThrow(BackupSetIncompleteError);
    expect((await repository.openSet('latest')).set.runId).toBe(before.at(-1)!.runId);
  });

  it('the integrity check reads a different part of the data each time and comes round again', async () => {
    expect((await repository.check(2)).subset).toBe('1/2');
    expect((await repository.check(2)).subset).toBe('2/2');
    expect((await repository.check(2)).subset).toBe('1/2');
    expect((await repository.check(3)).subset).toBe('1/3');
  });

  it('retention forgets whole sets, the incomplete one with them, and keeps the newest restorable', async () => {
    // A third complete run, so the incomplete set is older than a complete one.
    const third = await repository.backup(request());
    const before = await repository.listSets();
    expect(before.map((s) => s.complete)).toEqual([true, true, false, true]);
    // All runs are of today: one set a day keeps only the newest.
    const decision = await repository.forget({ daily: 1, weekly: 0, monthly: 0 });
    expect(decision.keep.map((k) => k.runId)).toEqual([third.set.runId]);
    expect(decision.forget.map((f) => f.reason)).toEqual(['expired', 'expired', 'incomplete']);
    expect(decision.snapshotsForgotten).toBe(3 + 3 + 1);
    const snapshots = JSON.parse(
      execFileSync('restic', ['--repo', repoPath, '--json', 'snapshots'], { env: { ...process.env, RESTIC_PASSWORD_FILE: passwordFile }, encoding: 'utf8' }),
    ) as unknown[];
    expect(snapshots).toHaveLength(3);
    const target = await tempDir('memu-backup-after-forget-');
    await repository.restoreFiles('latest', target);
    expect(await familyFileHashes(target)).toEqual(await familyFileHashes(baseDir));
    expect((await repository.check(1)).subset).toBe('1/1');
  });

  it('a wrong password is refused with its reason, and nothing in the repository changes', async () => {
    const other = join(await tempDir('memu-backup-other-'), 'password');
    await ensureBackupPassword(other);
    const listing = repositoryListing(repoPath);
    const error = await openBackupRepository({ kind: 'local', path: repoPath }, engineOptions(baseDir, other, log)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(WrongPasswordError);
    expect((error as Error).message).toBe(
      `The backup repository at ${repoPath} does not accept this password: it was made with another one. Use the password from the recovery kit that belongs to this repository, or choose an empty target for a new repository. Nothing in the repository was changed.`,
    );
    expect(repositoryListing(repoPath)).toEqual(listing);
    // The same password on a path with no repository says that instead.
    await expect(openBackupRepository({ kind: 'local', path: join(work, 'usb', 'empty') }, engineOptions(baseDir, passwordFile, log))).rejects.toThrow(RepositoryNotFoundError);
  });

  it('an unreachable REST server is reported once restic has retried it for the allowed time', async () => {
    const started = Date.now();
    const error = await openBackupRepository({ kind: 'rest', url: UNREACHABLE_REST }, engineOptions(baseDir, passwordFile, log, { unreachableAfterMs: 3000 })).catch((err: unknown) => err);
    const ms = Date.now() - started;
    expect(error).toBeInstanceOf(RepositoryUnreachableError);
    expect((error as Error).message).toMatch(
      /^The backup repository at rest:http:\/\/127\.0\.0\.1:18169\/ cannot be reached \(.*connection refused; gave up after [3-9] s of retries\)\. Nothing was changed\. Check the network/,
    );
    expect(ms).toBeLessThan(20_000);
  });

  it('a full target fails the run with its reason; the earlier set on it stays whole and restorable', async () => {
    const usb = await tempDir('memu-backup-small-usb-');
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', usb]);
    try {
      const small = await tempDir('memu-backup-small-data-');
      await createFamilyFiles(small, 40);
      const { repository: full } = await initBackupRepository({ kind: 'local', path: join(usb, 'repo') }, engineOptions(small, passwordFile, log));
      const earlier = await full.backup({ host: 'memu-test', stack, files: { baseDir: small, paths: FILE_PATHS } });
      const hashes = await familyFileHashes(small);
      // 30 MB of new photos onto what is left of 20 MiB.
      for (let i = 0; i < 30; i++) writeFileSync(join(small, 'photos', `big-${i}.jpg`), Buffer.from(execFileSync('head', ['-c', '1000000', '/dev/urandom'])));
      const error = await full.backup({ host: 'memu-test', stack, files: { baseDir: small, paths: FILE_PATHS } }).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(TargetFullError);
      expect((error as Error).message).toBe(
        `The backup target ${join(usb, 'repo')} is full (no space left on device). This run recorded no backup set; earlier backups are intact. Free space by keeping fewer backups, or use a larger drive.`,
      );
      const sets = await full.listSets();
      expect(sets.filter((s) => s.complete).map((s) => s.runId)).toEqual([earlier.set.runId]);
      const target = await tempDir('memu-backup-from-full-');
      await full.restoreFiles('latest', target, { verify: true });
      expect(await familyFileHashes(target)).toEqual(hashes);
      expect((await full.check(1)).subset).toBe('1/1');
    } finally {
      execFileSync('umount', [usb]);
    }
  });

  it('a corrupted pack file is found by the check, named, with what to do', async () => {
    const copy = join(work, 'damaged-copy');
    cpSync(repoPath, copy, { recursive: true });
    const packs = readdirSync(join(copy, 'data'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    const largest = packs.map((e) => join(e.parentPath, e.name)).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const fd = openSync(largest, 'r+');
    writeSync(fd, Buffer.from('deadbeefdeadbeef', 'hex'), 0, 8, 4096);
    closeSync(fd);
    const damaged = await openBackupRepository({ kind: 'local', path: copy }, engineOptions(baseDir, passwordFile, log, { cacheDir: join(work, 'damaged-cache') }));
    const error = await damaged.check(1).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RepositoryDamagedError);
    const pack = largest.split('/').at(-1)!;
    expect((error as RepositoryDamagedError).brokenPacks).toEqual([pack]);
    expect((error as Error).message).toMatch(new RegExp(`^The backup repository at ${copy} is damaged: restic's check found \\d+ errors?\\. Damaged pack files: ${pack}\\. Backups that use the damaged data may not restore\\..*restic repair packs ${pack}`));
    expect((error as RepositoryDamagedError).detail).toMatch(/ciphertext verification failed/);
    // The original is untouched.
    expect((await repository.check(1)).subset).toBe('1/1');
  });
});
