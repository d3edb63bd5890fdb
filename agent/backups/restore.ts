import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { dirname, posix } from 'node:path';
import { Transform } from 'node:stream';
import type { BackupManifest } from '../../shared/contracts/backup-manifest.ts';
import { fsyncDirectory, temporaryNameFor } from '../../shared/files/durable-files.ts';
import { startProcess } from '../../shared/process/run-command.ts';
import { BackupError, ItemNotFoundError, RestoreFailedError, stderrTail } from './backup-errors.ts';
import type { BackupSetInfo } from './backup-sets.ts';
import type { ResticMessage, RestoreSummary } from './restic-messages.ts';
import { runRestic, type ResticAccess } from './restic-process.ts';

/**
 * Bringing a set back: a database's dump into a database (through a restore command
 * the caller gives, reading the dump on stdin: `pg_restore` into an empty database),
 * the files into a directory, memu.db to a path, or one path of the files. Nothing is
 * written where it is not asked to go, and what fails is never left half in place where
 * that can be avoided (memu.db appears whole or not at all).
 */

export interface RestoreCommand {
  /** Reads the dump on stdin and exits 0 when it is in: `['pg_restore', '--dbname', 'synapse', '--exit-on-error', …]`. */
  command: readonly string[];
  env?: Readonly<Record<string, string>>;
}

export interface RestoreProgress {
  bytesDone: number;
  bytesTotal?: number;
  filesDone?: number;
  filesTotal?: number;
  percent: number;
}

const CONSEQUENCE = 'Nothing was put in place; the backup itself is unchanged.';

export async function restoreDatabase(access: ResticAccess, set: BackupSetInfo, manifest: BackupManifest, name: string, into: RestoreCommand): Promise<{ bytes: number; durationMs: number }> {
  const item = manifest.databases.find((d) => d.name === name);
  if (!item) throw new ItemNotFoundError(set.runId, `database ${name} (the set has ${manifest.databases.map((d) => d.name).join(', ') || 'no databases'})`);
  if (into.command.length === 0) throw new Error('the restore command is empty');
  const started = Date.now();
  const [program, ...args] = into.command as [string, ...string[]];
  const target = startProcess(program, args, { env: into.env ? { ...into.env } : undefined, stdin: 'pipe', stdout: 'ignore', stderr: 'pipe' });
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  counter.pipe(target.child.stdin!);
  // Once the restore command has ended nothing reads the pipe, and restic would block on
  // it: after a failure restic is cut off (its error is only a consequence); after a
  // success what may be left (the last buffered chunks) is drained so restic can finish.
  void target.ended.then((outcome) => {
    counter.unpipe(target.child.stdin!);
    if (outcome.code !== 0) counter.destroy(new Error(`${program} stopped reading the dump`));
    else counter.resume();
  });
  const dumped = runRestic(access, {
    parse: 'other',
    args: ['dump', item.snapshotId, item.path],
    operation: `dump of database ${name} from set ${set.runId}`,
    consequence: CONSEQUENCE,
    stdoutTo: counter,
  }).then(
    () => undefined,
    (err: unknown) => err,
  );
  const [dumpError, restored] = await Promise.all([dumped, target.ended]);
  // When the restore command fails, restic's broken pipe is only a consequence of it.
  if (restored.notInstalled) throw new RestoreFailedError(`database ${name}`, `${program} is not installed`);
  if (restored.code !== 0) throw new RestoreFailedError(`database ${name}`, `${program} failed (${restored.signal ?? `exit ${restored.code}`})`, stderrTail(restored.stderr));
  if (dumpError) throw dumpError;
  if (bytes !== item.bytes) throw new RestoreFailedError(`database ${name}`, `restic gave ${bytes} bytes of the dump, the manifest records ${item.bytes}`);
  return { bytes, durationMs: Date.now() - started };
}

function restoreProgress(onProgress: ((p: RestoreProgress) => void) | undefined) {
  return onProgress
    ? (m: ResticMessage) => {
        if (m.type !== 'restore-status') return;
        onProgress({ bytesDone: m.bytesRestored ?? 0, bytesTotal: m.totalBytes, filesDone: m.filesRestored, filesTotal: m.totalFiles, percent: m.percentDone });
      }
    : undefined;
}

/**
 * The set's files into `targetDir`, each at its place relative to the data directory it
 * came from (`<targetDir>/photos/…`). `verify` reads every restored file back and compares.
 */
export async function restoreFiles(
  access: ResticAccess,
  set: BackupSetInfo,
  manifest: BackupManifest,
  targetDir: string,
  opts: { verify?: boolean; onProgress?: (p: RestoreProgress) => void } = {},
): Promise<RestoreSummary> {
  if (!manifest.files || manifest.files.paths.length === 0) throw new ItemNotFoundError(set.runId, 'files (the set holds none)');
  const r = await runRestic(access, {
    parse: 'restore',
    args: ['restore', `${set.finalSnapshotId!}:${manifest.files.baseDir}`, '--target', targetDir, ...(opts.verify ? ['--verify'] : [])],
    operation: `restore of set ${set.runId}'s files`,
    consequence: 'Files restored so far stay in the target directory; the backup itself is unchanged.',
    onMessage: restoreProgress(opts.onProgress),
  });
  return summaryOf(r.messages);
}

function summaryOf(messages: readonly { type: string }[]): RestoreSummary {
  const found = [...messages].reverse().find((m): m is RestoreSummary => m.type === 'restore-summary');
  return found ?? { type: 'restore-summary', totalFiles: 0, filesRestored: 0, filesSkipped: 0, totalBytes: 0, bytesRestored: 0 };
}

/** A path of the files as the family names it: relative to the data directory, inside what the set holds. */
function checkItemPath(manifest: BackupManifest, runId: string, path: string): string {
  const normal = posix.normalize(path.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (normal === '' || normal === '.' || normal.startsWith('..')) throw new ItemNotFoundError(runId, path);
  const held = manifest.files?.paths.some((p) => normal === p || normal.startsWith(`${p}/`));
  if (!held) throw new ItemNotFoundError(runId, path);
  return normal;
}

/** One file or folder of the set (`photos/library/2024`) into `targetDir`, at its place relative to the data directory. */
export async function restoreItem(
  access: ResticAccess,
  set: BackupSetInfo,
  manifest: BackupManifest,
  path: string,
  targetDir: string,
  opts: { onProgress?: (p: RestoreProgress) => void } = {},
): Promise<RestoreSummary> {
  const item = checkItemPath(manifest, set.runId, path);
  const r = await runRestic(access, {
    parse: 'restore',
    args: ['restore', `${set.finalSnapshotId!}:${manifest.files!.baseDir}`, '--include', `/${item}`, '--target', targetDir],
    operation: `restore of ${item} from set ${set.runId}`,
    consequence: 'The backup itself is unchanged.',
    onMessage: restoreProgress(opts.onProgress),
  });
  const summary = summaryOf(r.messages);
  if (summary.totalFiles === 0) throw new ItemNotFoundError(set.runId, path);
  return summary;
}

/**
 * memu.db back at `destination`, which nothing may have open (the agent stops its
 * family-db module first): the copy is written under a temporary name beside it,
 * checked against the manifest's SHA-256, fsynced and renamed over the old file. The
 * old file's write-ahead log is removed before the rename, or SQLite would replay the
 * old log into the restored file.
 */
export async function restoreFamilyDb(access: ResticAccess, set: BackupSetInfo, manifest: BackupManifest, destination: string): Promise<{ bytes: number; sha256: string }> {
  const item = manifest.familyDb;
  if (!item) throw new ItemNotFoundError(set.runId, 'memu.db (the set holds none)');
  await mkdir(dirname(destination), { recursive: true, mode: 0o700 });
  const tmp = temporaryNameFor(destination);
  const handle = await open(tmp, 'wx', 0o600);
  const hash = createHash('sha256');
  let bytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const file = createWriteStream('', { fd: handle.fd, autoClose: false });
  hashing.pipe(file);
  try {
    await runRestic(access, {
      parse: 'other',
      args: ['dump', set.finalSnapshotId!, item.path],
      operation: `dump of memu.db from set ${set.runId}`,
      consequence: CONSEQUENCE,
      stdoutTo: hashing,
    });
    await new Promise<void>((resolve, reject) => {
      if (file.writableFinished) resolve();
      file.once('finish', resolve).once('error', reject);
    });
    const sha256 = hash.digest('hex');
    if (sha256 !== item.sha256 || bytes !== item.bytes) {
      throw new RestoreFailedError('memu.db', `the copy restic gave (${bytes} bytes, SHA-256 ${sha256.slice(0, 12)}…) is not the one the manifest records (${item.bytes} bytes, ${item.sha256.slice(0, 12)}…)`);
    }
    await handle.sync();
    await handle.close();
    for (const suffix of ['-wal', '-shm', '-journal']) await unlink(`${destination}${suffix}`).catch(() => {});
    await rename(tmp, destination);
    await fsyncDirectory(dirname(destination));
    return { bytes, sha256 };
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    if (err instanceof BackupError) throw err;
    throw new RestoreFailedError('memu.db', (err as Error).message);
  }
}

/** One entry of a folder in a set, as the dashboard lists it (path relative to the data directory). */
export interface SetItem {
  path: string;
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size?: number;
  mtime?: string;
}

/**
 * What a folder of the set holds (`''` for the top: the backed-up folders), one level,
 * folders first. `restic ls` of the set's last snapshot, whose paths are absolute under
 * the data directory the manifest names.
 */
export async function listSetItems(access: ResticAccess, set: BackupSetInfo, manifest: BackupManifest, path: string): Promise<SetItem[]> {
  if (!manifest.files || manifest.files.paths.length === 0) return [];
  const baseDir = manifest.files.baseDir.replace(/\/+$/, '');
  if (path.replace(/^\/+|\/+$/g, '') === '') {
    return manifest.files.paths.map((p) => ({ path: p, name: p, type: 'dir' as const }));
  }
  const item = checkItemPath(manifest, set.runId, path);
  const dir = `${baseDir}/${item}`;
  const r = await runRestic(access, {
    parse: 'other',
    args: ['ls', set.finalSnapshotId!, dir],
    operation: `listing of ${item} in set ${set.runId}`,
    consequence: 'Nothing was changed.',
    collectStdout: true,
  });
  const items: SetItem[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let node: { type?: unknown; path?: unknown; name?: unknown; size?: unknown; mtime?: unknown; struct_type?: unknown; message_type?: unknown };
    try {
      node = JSON.parse(line) as typeof node;
    } catch {
      continue;
    }
    if ((node.struct_type ?? node.message_type) !== 'node' || typeof node.path !== 'string' || typeof node.name !== 'string') continue;
    if (posix.dirname(node.path) !== dir) continue;
    const type = node.type === 'file' || node.type === 'dir' || node.type === 'symlink' ? node.type : 'other';
    items.push({
      path: posix.relative(baseDir, node.path),
      name: node.name,
      type,
      ...(typeof node.size === 'number' && type === 'file' ? { size: node.size } : {}),
      ...(typeof node.mtime === 'string' ? { mtime: node.mtime } : {}),
    });
  }
  if (items.length === 0) {
    // An empty folder lists nothing, and neither does a path the set does not hold: tell them apart.
    const held = r.stdout.split('\n').some((l) => l.includes(`"path":${JSON.stringify(dir)}`));
    if (!held) throw new ItemNotFoundError(set.runId, item);
  }
  return items.sort((a, b) => (a.type === 'dir' ? 0 : 1) - (b.type === 'dir' ? 0 : 1) || a.name.localeCompare(b.name));
}

/** A regular file of a set, as a restore drill samples it (path relative to the data directory). */
export interface SetFile {
  path: string;
  size: number;
  mtime: string;
}

/** Every regular file of the set's files (not memu.db's copy or the manifest), from `restic ls --recursive`. */
export async function listSetFiles(access: ResticAccess, set: BackupSetInfo, manifest: BackupManifest): Promise<SetFile[]> {
  if (!manifest.files || manifest.files.paths.length === 0) return [];
  const baseDir = manifest.files.baseDir.replace(/\/+$/, '');
  const r = await runRestic(access, {
    parse: 'other',
    args: ['ls', '--recursive', set.finalSnapshotId!, ...manifest.files.paths.map((p) => `${baseDir}/${p}`)],
    operation: `listing of set ${set.runId}'s files`,
    consequence: 'Nothing was changed.',
    collectStdout: true,
  });
  const files: SetFile[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let node: { type?: unknown; path?: unknown; size?: unknown; mtime?: unknown };
    try {
      node = JSON.parse(line) as typeof node;
    } catch {
      continue;
    }
    if (node.type !== 'file' || typeof node.path !== 'string' || !node.path.startsWith(`${baseDir}/`)) continue;
    files.push({ path: posix.relative(baseDir, node.path), size: typeof node.size === 'number' ? node.size : 0, mtime: typeof node.mtime === 'string' ? node.mtime : '' });
  }
  return files;
}

/** Some files of a set into `targetDir` (at their places relative to the data directory), each read back and compared by restic (`--verify`). */
export async function restoreSample(access: ResticAccess, set: BackupSetInfo, manifest: BackupManifest, paths: readonly string[], targetDir: string): Promise<RestoreSummary> {
  if (!manifest.files || paths.length === 0) return summaryOf([]);
  const items = paths.map((p) => checkItemPath(manifest, set.runId, p));
  const r = await runRestic(access, {
    parse: 'restore',
    args: ['restore', `${set.finalSnapshotId!}:${manifest.files.baseDir}`, '--target', targetDir, '--verify', ...items.flatMap((i) => ['--include', `/${i}`])],
    operation: `restore drill of set ${set.runId}`,
    consequence: 'The backup itself is unchanged.',
  });
  return summaryOf(r.messages);
}
