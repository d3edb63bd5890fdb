import { lstat, lutimes, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Sets every access time to SOURCE_DATE_EPOCH and every modification time newer than it
 * back to it (what `tar --clamp-mtime` does), so file times no longer say when we built.
 * Change times cannot be set from user space; the ext4 stage pins those.
 */
export async function clampTreeTimes(root: string, epoch: number, onlyPaths?: string[]): Promise<number> {
  let changed = 0;
  const clamp = async (full: string) => {
    const st = await lstat(full);
    const mtime = Math.min(st.mtimeMs / 1000, epoch);
    await lutimes(full, epoch, mtime);
    changed++;
    return st;
  };
  if (onlyPaths) {
    for (const p of onlyPaths) await clamp(join(root, p));
    return changed;
  }
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const full = join(dir, name);
      const st = await clamp(full);
      if (st.isDirectory()) await walk(full);
    }
  };
  await clamp(root);
  await walk(root);
  return changed;
}
