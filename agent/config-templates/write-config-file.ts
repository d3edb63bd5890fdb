import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDirectory, temporaryNameFor } from '../atomic-file.ts';

export interface FileOwner {
  uid: number;
  gid: number;
}

/**
 * agent/atomic-file.ts's pattern (temporary name, fsync, rename, fsync the directory)
 * plus what config files need: an exact mode regardless of umask, and an owner set
 * BEFORE the rename, so a secret never exists under its real name with the wrong
 * owner or mode. Ownership is only applied when running as root.
 */
export async function writeConfigFileAtomic(
  path: string,
  data: string | Buffer,
  opts: { mode: number; owner?: FileOwner; exclusive?: boolean },
): Promise<void> {
  const tmp = temporaryNameFor(path);
  const fd = await open(tmp, 'wx', 0o600);
  try {
    await fd.chmod(opts.mode);
    if (opts.owner && process.getuid?.() === 0) await fd.chown(opts.owner.uid, opts.owner.gid);
    await fd.writeFile(data);
    await fd.sync();
  } catch (err) {
    await fd.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fd.close();
  if (opts.exclusive) {
    // link() fails when the target exists, so an existing key is never replaced.
    try {
      await link(tmp, path);
    } finally {
      await unlink(tmp).catch(() => {});
    }
  } else {
    await rename(tmp, path);
  }
  await fsyncDirectory(dirname(path));
}

/** True when `path` already holds exactly `data` with this mode (and owner, as root). */
export async function fileIsCurrent(path: string, data: string | Buffer, mode: number, owner?: FileOwner): Promise<boolean> {
  try {
    const [info, current] = await Promise.all([stat(path), readFile(path)]);
    if ((info.mode & 0o7777) !== mode) return false;
    if (owner && process.getuid?.() === 0 && (info.uid !== owner.uid || info.gid !== owner.gid)) return false;
    return current.equals(Buffer.isBuffer(data) ? data : Buffer.from(data));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
