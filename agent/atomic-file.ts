// Shared by device and host: the host imports it through image/atomic-write.ts.
import { open, rename, unlink, constants } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';

/** A temporary name next to `path`, so a rename onto it stays on one filesystem. */
export function temporaryNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now().toString(36)}`);
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
 * Writes a file so that readers see either the old content or the whole new one:
 * temporary name, fsync, rename, fsync the directory. `exclusive` refuses to replace
 * an existing file (for keys, which must never be overwritten by accident).
 */
export async function writeFileAtomic(
  path: string,
  data: string | Buffer,
  opts: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  if (opts.exclusive) {
    const probe = await open(path, 'wx', opts.mode).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EEXIST') throw new Error(`${path} already exists; refusing to overwrite it`);
      throw err;
    });
    await probe.close();
  }
  const tmp = temporaryNameFor(path);
  const fd = await open(tmp, 'w', opts.mode ?? 0o644);
  try {
    await fd.writeFile(data);
    await fd.sync();
  } catch (err) {
    await fd.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  } finally {
    await fd.close().catch(() => {});
  }
  await rename(tmp, path);
  await fsyncDirectory(dirname(path));
}
