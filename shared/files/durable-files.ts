import { randomBytes } from 'node:crypto';
import { chmod, chown, constants, link, mkdir, open, readdir, readFile, readlink, rename, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ignoreNotFound } from '../errors.ts';

/**
 * The one home of crash-safe file writes, for both programs: whatever a power cut or a
 * kill interrupts, a reader sees the old content or the whole new one, never a part.
 * Every writer writes under a temporary name `.NAME.tmp-<pid>-<random>` next to the
 * final one first; removeStaleTemporaryFiles sweeps what an interrupted write left.
 */

export interface FileOwner {
  uid: number;
  gid: number;
}

export interface AtomicWriteOptions {
  /** Exact permission bits, whatever the umask (default 0644). */
  mode?: number;
  /** Owner set before the file appears under its name; applied only when running as root. */
  owner?: FileOwner;
  /**
   * Never replace an existing file: the commit is a link(), which fails when the name
   * exists (keys and per-device secrets). The write then reports `false`.
   */
  noReplace?: boolean;
  /** Crash-test hook: `written` (temporary file synced) and `committed` (name in place). */
  checkpoint?: (point: 'written' | 'committed') => Promise<void>;
}

/** A temporary name next to `path` (same filesystem, so rename/link onto it is atomic). */
export function temporaryNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** fsyncs a file or block device, so what another program (mtools, sfdisk) wrote there is on the medium. */
export async function fsyncFile(path: string): Promise<void> {
  const fd = await open(path, 'r');
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/** fsyncs a directory so a rename inside it survives a power cut. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const fd = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/**
 * Writes a file so that readers see either the old content or the whole new one, with
 * its final mode and owner from the first instant: temporary name, fsync, rename (or
 * link, with `noReplace`), fsync the directory. Returns false only when `noReplace`
 * found the name taken.
 */
export async function writeFileAtomic(path: string, data: string | Buffer, opts: AtomicWriteOptions = {}): Promise<boolean> {
  const tmp = temporaryNameFor(path);
  const fd = await open(tmp, 'wx', 0o600);
  try {
    await fd.chmod(opts.mode ?? 0o644);
    if (opts.owner && process.getuid?.() === 0) await fd.chown(opts.owner.uid, opts.owner.gid);
    await fd.writeFile(data);
    await fd.sync();
  } catch (err) {
    await fd.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fd.close();
  await opts.checkpoint?.('written');
  let written = true;
  if (opts.noReplace) {
    try {
      await link(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        await unlink(tmp).catch(() => {});
        throw err;
      }
      written = false;
    }
    await opts.checkpoint?.('committed');
    await unlink(tmp);
  } else {
    await rename(tmp, path);
    await opts.checkpoint?.('committed');
  }
  await fsyncDirectory(dirname(path));
  return written;
}

/** Replaces (or creates) a symbolic link atomically: a new link under a temporary name, renamed over the old. */
export async function replaceSymlink(path: string, target: string): Promise<boolean> {
  if ((await readlink(path).catch(() => undefined)) === target) return false;
  await mkdir(dirname(path), { recursive: true });
  const tmp = temporaryNameFor(path);
  await symlink(target, tmp);
  await rename(tmp, path); // atomically replaces a file or an older link
  await fsyncDirectory(dirname(path));
  return true;
}

const TEMPORARY_NAME = /^\..+\.tmp-[0-9]+-[0-9a-z]+$/;

/** Deletes interrupted writes' temporary files in `dir` (and below, with `recursive`). A missing dir is fine. */
export async function removeStaleTemporaryFiles(
  dir: string,
  /** `only`: the final names whose leftovers to remove (in shared dirs such as /etc). */
  opts: { recursive?: boolean; only?: readonly string[] } = {},
): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(ignoreNotFound);
  if (!entries) return [];
  const removed: string[] = [];
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && opts.recursive) removed.push(...(await removeStaleTemporaryFiles(path, opts)));
    else if (!entry.isDirectory() && TEMPORARY_NAME.test(entry.name) && (!opts.only || opts.only.some((n) => entry.name.startsWith(`.${n}`)))) {
      await unlink(path).catch(() => {});
      removed.push(path);
    }
  }
  if (removed.some((p) => dirname(p) === dir)) await fsyncDirectory(dir);
  return removed;
}

/**
 * Makes a directory if it is missing, then applies its mode and owner (as root) every
 * time, not only when it was created: a crash between mkdir and chown must not leave a
 * directory that a container user cannot write, for good. `checkpoint` is the crash
 * tests' point between the two.
 */
export async function ensureDirectory(path: string, mode: number, owner?: FileOwner, checkpoint?: () => void | Promise<void>): Promise<void> {
  await mkdir(path, { recursive: true, mode });
  await checkpoint?.();
  await chmod(path, mode);
  if (owner && process.getuid?.() === 0) await chown(path, owner.uid, owner.gid);
}

/** Writes a whole file atomically with an exact mode (and owner, as root), making its directory if needed. */
export async function writeFileDurably(path: string, data: string | Buffer, mode: number, owner?: FileOwner): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, data, { mode, owner });
}

export async function writeJsonDurably(path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileDurably(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** Parsed JSON, or undefined when the file does not exist. */
export async function readJsonIfPresent(path: string): Promise<unknown> {
  const text = await readTextIfPresent(path);
  return text === undefined ? undefined : JSON.parse(text);
}

export async function readTextIfPresent(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(ignoreNotFound);
}

/**
 * Create-if-absent for secrets: the content is written and fsynced under a temporary
 * name, then hard-linked to `path` — link() never replaces an existing file, so a
 * secret that was once durably written is never regenerated or overwritten, and `path`
 * never shows a half-written secret. Returns the content now at `path` (the new one, or
 * the one that was already there) and whether it was created now.
 *
 * `checkpoint` names the crash points for tests (`after-tmp-write`, `after-link`).
 */
export async function createFileOnce(
  path: string,
  content: string,
  opts: { mode: number; owner?: FileOwner; checkpoint?: (point: string) => Promise<void> },
): Promise<{ content: string; created: boolean }> {
  const existing = await readTextIfPresent(path);
  if (existing !== undefined) return { content: existing, created: false };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const created = await writeFileAtomic(path, content, {
    mode: opts.mode,
    owner: opts.owner,
    noReplace: true,
    checkpoint: (point) => opts.checkpoint?.(point === 'written' ? 'after-tmp-write' : 'after-link') ?? Promise.resolve(),
  });
  return created ? { content, created } : { content: await readFile(path, 'utf8'), created };
}
