// Shared by device and host: the host imports it through image/atomic-write.ts.
import { randomBytes } from 'node:crypto';
import { link, open, rename, unlink, constants } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

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
