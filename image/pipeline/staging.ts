import { copyFile, chmod, lstat, mkdir, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runCommand } from '../../shared/process/run-command.ts';

/**
 * Stages 2 and 3 work on a staging tree: a hard-linked copy of the cached root filesystem
 * (about a second for 16k files). Hard links share file contents with the cache, so every
 * write here REPLACES a path (unlink, then create) and never edits a file in place; the
 * cache's digest check catches any slip.
 */
export async function createStagingTree(rootfsTree: string, stagingTree: string): Promise<void> {
  await rm(stagingTree, { recursive: true, force: true });
  await mkdir(dirname(stagingTree), { recursive: true });
  await runCommand('cp', ['-a', '--link', rootfsTree, stagingTree]);
}

/** Writes a file into the staging tree by replacing whatever was at that path. */
export async function replaceFile(tree: string, relPath: string, content: string | Buffer, mode = 0o644): Promise<void> {
  const target = join(tree, relPath);
  await mkdir(dirname(target), { recursive: true });
  await rm(target, { force: true });
  await writeFile(target, content, { mode });
  await chmod(target, mode);
}

/**
 * Lays overlay directories onto the tree, in order (common first, then the profile's).
 * Returns the paths written, relative to the tree.
 */
export async function applyOverlays(tree: string, overlayDirs: string[]): Promise<string[]> {
  const written: string[] = [];
  const walk = async (src: string, rel: string): Promise<void> => {
    for (const name of (await readdir(src)).sort()) {
      const from = join(src, name);
      const relPath = rel ? `${rel}/${name}` : name;
      const to = join(tree, relPath);
      const st = await lstat(from);
      if (st.isDirectory()) {
        await mkdir(to, { recursive: true });
        await walk(from, relPath);
        continue;
      }
      await mkdir(dirname(to), { recursive: true });
      await rm(to, { force: true });
      if (st.isSymbolicLink()) await symlink(await readlink(from), to);
      else {
        await copyFile(from, to);
        // git keeps only the executable bit; everything else is root-owned 0644/0755.
        await chmod(to, st.mode & 0o111 ? 0o755 : 0o644);
      }
      written.push(relPath);
    }
  };
  for (const dir of overlayDirs) {
    const exists = await lstat(dir).then((s) => s.isDirectory(), () => false);
    if (exists) await walk(dir, '');
  }
  return written;
}

/** Enables systemd units offline, as `systemctl enable` would on the device. */
export async function enableUnits(tree: string, units: string[]): Promise<void> {
  if (units.length > 0) await runCommand('systemctl', [`--root=${tree}`, 'enable', ...units]);
}
