import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { FamilyDb } from '../family-db/index.ts';
import {
  BACKUP_MANIFEST_FORMAT,
  BACKUP_SET_DIR_IN_SNAPSHOT,
  DATABASE_NAME_PATTERN,
  FAMILY_DB_PATH_IN_SNAPSHOT,
  parseBackupManifest,
  type BackupDatabaseItem,
  type BackupFamilyDbItem,
  type BackupFilesItem,
  type BackupManifest,
} from '../../shared/contracts/backup-manifest.ts';
import { ensureDirectory, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { isNotFound } from '../../shared/errors.ts';
import { BackupError, RESTIC_EXIT, SourceMissingError } from './backup-errors.ts';
import { makeRunId, runTags, SET_TAGS, type BackupSetInfo, type SetSnapshot } from './backup-sets.ts';
import type { BackupSummary, ItemError, ResticMessage } from './restic-messages.ts';
import { runRestic, type ResticAccess } from './restic-process.ts';

/**
 * One backup run, in this order: each database's dump streamed into its own snapshot
 * (restic runs the dump command and reads its stdout: nothing is written to disk, and a
 * dump that fails makes no snapshot); memu.db copied through SQLite (`VACUUM INTO`,
 * consistent while the agent keeps writing) into the staging directory; the manifest
 * written there; then one last snapshot of the files, the copy and the manifest. The set
 * is complete when that snapshot exists; a run stopped anywhere before leaves an
 * incomplete set that restore ignores and retention removes.
 */

export interface DatabaseDumpSource {
  /** The database's name (a tag and a file name: lower case, digits, `_`, `-`). */
  name: string;
  /**
   * A program writing a consistent dump to stdout and exiting 0 only when it is whole:
   * `['docker', 'exec', 'memu_postgres', 'pg_dump', '--format=custom', '-U', 'synapse', 'synapse']`.
   */
  command: readonly string[];
  /** Added to its environment (PGPASSWORD…); never put secrets in `command`. */
  env?: Readonly<Record<string, string>>;
}

export interface FileSources {
  /** The absolute directory the paths are under (the data partition). */
  baseDir: string;
  /** Directories or files under baseDir: `photos`, `synapse/media`, `config`, `secrets`. */
  paths: readonly string[];
}

export type BackupProgress =
  | { stage: 'database'; database: string; bytesDone: number; secondsElapsed?: number }
  | { stage: 'files'; bytesDone: number; bytesTotal?: number; filesDone?: number; filesTotal?: number; percent: number; etaSeconds?: number };

export interface BackupRunRequest {
  /** The host name every snapshot of the set carries (the device's). */
  host: string;
  /** Versions of what made the data, recorded in the manifest (`{ memuOs: '1.2.0', synapse: '1.119.0', … }`). */
  stack: Readonly<Record<string, string>>;
  databases?: readonly DatabaseDumpSource[];
  familyDb?: FamilyDb;
  files?: FileSources;
  onProgress?: (progress: BackupProgress) => void;
  /**
   * Called once every database's dump is in the repository, before the files: the caller
   * holds the stack still only until then. Not called when a dump fails.
   */
  onDatabasesDone?: () => void;
}

export interface BackupRunResult {
  set: BackupSetInfo;
  manifest: BackupManifest;
  /** restic's summary of the last snapshot (files, memu.db, manifest). */
  filesSummary: BackupSummary;
  /** Files restic could not read (the snapshot holds the rest; exit code 3). */
  warnings: string[];
  durationMs: number;
}

/** Inside the staging directory: what goes into the last snapshot as `/memu-backup-set`. */
const SET_DIR_NAME = posix.basename(BACKUP_SET_DIR_IN_SNAPSHOT);
const CONSEQUENCE = 'This run recorded no backup set; earlier backups are intact.';

function checkRequest(req: BackupRunRequest): void {
  const names = new Set<string>();
  for (const db of req.databases ?? []) {
    if (!DATABASE_NAME_PATTERN.test(db.name)) throw new Error(`database name ${JSON.stringify(db.name)} must be lower case letters, digits, _ or -`);
    if (names.has(db.name)) throw new Error(`database ${db.name} is listed twice`);
    names.add(db.name);
    if (db.command.length === 0) throw new Error(`database ${db.name} has no dump command`);
  }
  if (req.files) {
    if (!posix.isAbsolute(req.files.baseDir) || req.files.baseDir === '/') throw new Error(`the files' base directory must be an absolute directory other than /, not ${req.files.baseDir}`);
    for (const p of req.files.paths) {
      if (posix.isAbsolute(p) || posix.normalize(p) !== p || p === '.' || p.startsWith('..')) throw new Error(`${p} must be a normalised path relative to ${req.files.baseDir}`);
    }
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** `restic backup` for one snapshot of a set: the device's host name, the run's tags, and this snapshot's own tag. */
function backupCommand(host: string, runId: string, snapshotTag: string): string[] {
  return ['backup', '--host', host, ...[...runTags(runId), snapshotTag].flatMap((t) => ['--tag', t])];
}

function lastSummary(messages: readonly ResticMessage[]): BackupSummary | undefined {
  return [...messages].reverse().find((m): m is BackupSummary => m.type === 'backup-summary');
}

async function dumpDatabase(access: ResticAccess, req: BackupRunRequest, runId: string, db: DatabaseDumpSource): Promise<{ item: BackupDatabaseItem; summary: BackupSummary }> {
  const started = Date.now();
  const result = await runRestic(access, {
    parse: 'backup',
    args: [
      ...backupCommand(req.host, runId, `${SET_TAGS.databasePrefix}${db.name}`),
      '--stdin-from-command',
      '--stdin-filename',
      `${db.name}.pgdump`,
      '--',
      ...db.command,
    ],
    env: db.env,
    operation: `backup of database ${db.name}`,
    consequence: CONSEQUENCE,
    database: db.name,
    onMessage: (m) => {
      if (m.type === 'backup-status') req.onProgress?.({ stage: 'database', database: db.name, bytesDone: m.bytesDone ?? 0, secondsElapsed: m.secondsElapsed });
    },
  });
  const summary = lastSummary(result.messages);
  if (!summary?.snapshotId) throw new BackupError('restic-failed', `restic's backup of database ${db.name} reported no snapshot.`, CONSEQUENCE, result.stderr);
  return { item: { name: db.name, snapshotId: summary.snapshotId, path: `/${db.name}.pgdump`, bytes: summary.totalBytesProcessed, durationMs: Date.now() - started }, summary };
}

/** memu.db through the agent's own connection: `VACUUM INTO` writes a consistent copy while the agent goes on. */
async function copyFamilyDb(db: FamilyDb, setDir: string): Promise<BackupFamilyDbItem> {
  const started = Date.now();
  const copy = join(setDir, 'memu.db');
  db.run('VACUUM INTO ?', [copy]);
  await chmod(copy, 0o600);
  const { size } = await stat(copy);
  return { path: FAMILY_DB_PATH_IN_SNAPSHOT, bytes: size, sha256: await sha256File(copy), schemaVersion: db.schemaVersion(), durationMs: Date.now() - started };
}

async function presentPaths(files: FileSources): Promise<BackupFilesItem> {
  try {
    if (!(await stat(files.baseDir)).isDirectory()) throw new SourceMissingError(files.baseDir, 'it is not a directory');
  } catch (err) {
    if (isNotFound(err)) throw new SourceMissingError(files.baseDir, 'it does not exist');
    throw err;
  }
  const paths: string[] = [];
  const missingPaths: string[] = [];
  for (const p of files.paths) {
    const exists = await lstat(join(files.baseDir, p)).then(
      () => true,
      (err: unknown) => {
        if (isNotFound(err)) return false;
        throw err;
      },
    );
    (exists ? paths : missingPaths).push(p);
  }
  return { baseDir: files.baseDir, paths, missingPaths };
}

/** Runs one backup; see the top of this file. Throws a BackupError saying why when the set could not be completed. */
export async function runBackup(access: ResticAccess, stagingDir: string, resticVersion: string, req: BackupRunRequest): Promise<BackupRunResult> {
  checkRequest(req);
  const started = Date.now();
  const startedAt = new Date(started);
  const runId = makeRunId(startedAt);
  const log = access.log.child({ runId, repository: access.displayLocation });
  await ensureDirectory(stagingDir, 0o700);
  const setDir = join(stagingDir, SET_DIR_NAME);
  // What a killed run left here is of no use: its set was never completed.
  await rm(setDir, { recursive: true, force: true });
  await mkdir(setDir, { mode: 0o700 });
  try {
    const databases: BackupDatabaseItem[] = [];
    const snapshots: SetSnapshot[] = [];
    let bytesAdded = 0;
    for (const db of req.databases ?? []) {
      const { item, summary } = await dumpDatabase(access, req, runId, db);
      databases.push(item);
      snapshots.push({ id: item.snapshotId, time: summary.backupStart ?? new Date().toISOString(), kind: 'database', database: db.name });
      bytesAdded += summary.dataAdded;
      log.info({ database: db.name, bytes: item.bytes, ms: item.durationMs }, 'database dump backed up');
    }
    req.onDatabasesDone?.();

    const familyDb = req.familyDb ? await copyFamilyDb(req.familyDb, setDir) : null;
    const files = req.files ? await presentPaths(req.files) : null;
    if (files && files.missingPaths.length > 0) log.warn({ missing: files.missingPaths }, 'some backup paths do not exist yet; backing up the others');

    const manifest = parseBackupManifest(
      {
        format: BACKUP_MANIFEST_FORMAT,
        runId,
        host: req.host,
        startedAt: startedAt.toISOString(),
        writtenAt: new Date().toISOString(),
        stack: { ...req.stack },
        resticVersion,
        databases,
        familyDb,
        files,
      },
      'the new backup manifest',
    );
    await writeFileAtomic(join(setDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });

    const final = await runRestic(access, {
      parse: 'backup',
      cwd: stagingDir,
      args: [
        ...backupCommand(req.host, runId, SET_TAGS.complete),
        // Relative, so it lands at /memu-backup-set in the snapshot whatever the staging path.
        SET_DIR_NAME,
        ...(files?.paths ?? []).map((p) => join(files!.baseDir, p)),
      ],
      operation: 'backup of the files',
      consequence: CONSEQUENCE,
      acceptExitCodes: [RESTIC_EXIT.incompleteSnapshot],
      onMessage: (m) => {
        if (m.type !== 'backup-status') return;
        req.onProgress?.({
          stage: 'files',
          bytesDone: m.bytesDone ?? 0,
          bytesTotal: m.totalBytes,
          filesDone: m.filesDone,
          filesTotal: m.totalFiles,
          percent: m.percentDone,
          etaSeconds: m.secondsRemaining,
        });
      },
    });
    const filesSummary = lastSummary(final.messages);
    if (!filesSummary?.snapshotId) throw new BackupError('restic-failed', "restic's backup of the files reported no snapshot.", CONSEQUENCE, final.stderr);
    const warnings = final.messages.filter((m): m is ItemError => m.type === 'item-error').map((e) => `${e.item}: ${e.message}`);
    if (warnings.length > 0) log.warn({ warnings: warnings.slice(0, 20), count: warnings.length }, 'some files could not be read; the set holds the others');

    snapshots.push({ id: filesSummary.snapshotId, time: filesSummary.backupStart ?? new Date().toISOString(), kind: 'final' });
    const set: BackupSetInfo = {
      runId,
      host: req.host,
      startedAt: startedAt.toISOString(),
      finishedAt: filesSummary.backupEnd ?? new Date().toISOString(),
      complete: true,
      snapshots,
      finalSnapshotId: filesSummary.snapshotId,
      bytesProcessed: databases.reduce((n, d) => n + d.bytes, 0) + filesSummary.totalBytesProcessed,
      bytesAdded: bytesAdded + filesSummary.dataAdded,
      files: { new: filesSummary.filesNew, changed: filesSummary.filesChanged, unmodified: filesSummary.filesUnmodified, processed: filesSummary.totalFilesProcessed },
    };
    const durationMs = Date.now() - started;
    log.info(
      { ms: durationMs, filesNew: filesSummary.filesNew, filesChanged: filesSummary.filesChanged, bytesAdded: filesSummary.dataAdded, databases: databases.length },
      'backup set complete',
    );
    return { set, manifest, filesSummary, warnings, durationMs };
  } finally {
    await rm(setDir, { recursive: true, force: true });
  }
}
