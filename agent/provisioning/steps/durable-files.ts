import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDirectory, writeFileAtomic, type FileOwner } from '../../../shared/files/durable-files.ts';

/**
 * File writes for provisioning state that must survive a power cut at any instant.
 * Every writer here (and agent/atomic-file.ts, write-config-file.ts) writes under a
 * temporary name `.NAME.tmp-…` first; after a crash those leftovers are swept.
 */
const TEMPORARY_NAME = /^\..+\.tmp-[0-9]+-[0-9a-z]+$/;

/** Deletes interrupted writes' temporary files in `dir` (and below, with `recursive`). Missing dir is fine. */
export async function removeStaleTemporaryFiles(
  dir: string,
  /** `only`: the final names whose leftovers to remove (in shared dirs such as /etc). */
  opts: { recursive?: boolean; only?: readonly string[] } = {},
): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
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

/** Writes a whole file atomically with an exact mode (and owner as root). */
export async function writeFileDurably(path: string, data: string | Buffer, mode: number, owner?: FileOwner): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, data, { mode, owner });
}

export async function writeJsonDurably(path: string, value: unknown, mode = 0o644): Promise<void> {
  await writeFileDurably(path, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** Parsed JSON, or undefined when the file does not exist. */
export async function readJsonIfPresent(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
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
