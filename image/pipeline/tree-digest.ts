import { createHash } from 'node:crypto';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A digest of a directory tree's metadata: names, types, modes, owners, sizes, mtimes,
 * device numbers and link targets, in sorted order. It is how a cached root filesystem
 * proves it is still what was built: a missing, added, truncated or edited file changes
 * it (editing sets an mtime after the clamped epoch). File contents are not read, which
 * keeps the check under a second for 16k files; `memu build --refresh-rootfs` rebuilds.
 */
export async function treeDigest(root: string): Promise<{ digest: string; files: number; bytes: number }> {
  const hash = createHash('sha256');
  let files = 0;
  let bytes = 0;
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      const st = await lstat(full);
      files++;
      const mtime = Math.floor(st.mtimeMs / 1000);
      hash.update(`${path}\0${st.mode}\0${st.uid}\0${st.gid}\0${st.size}\0${mtime}\0${st.rdev}\0`);
      if (st.isSymbolicLink()) hash.update(`${await readlink(full)}\0`);
      else if (st.isFile()) bytes += st.size;
      else if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return { digest: hash.digest('hex'), files, bytes };
}
