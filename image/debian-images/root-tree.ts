import { lstat, readdir, readlink, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { comparePaths, type TarEntry } from './layer-tar.ts';

/**
 * The packages' root tree: each .deb's files unpacked with `dpkg-deb -x` (modes and links
 * as packed; no maintainer script runs), documentation pruned, then read back as layer
 * entries owned by root.
 */

/** Unpacks the .debs, in the order given, into `root`. */
export async function unpackDebs(debPaths: readonly string[], root: string): Promise<void> {
  for (const deb of debPaths) {
    const r = await runCommandOutcome('dpkg-deb', ['-x', deb, root]);
    if (r.notInstalled) throw new MemuError('missing host tool: dpkg-deb (Debian package dpkg)', ExitCode.environment, 'run scripts/setup-host');
    if (r.code !== 0) throw new MemuError(`dpkg-deb -x ${deb} failed: ${r.stderr.trim()}`, ExitCode.badInput, 'delete it from the deb cache; the next build fetches it again');
  }
}

/**
 * Paths a package ships with an owner other than root (`dpkg-deb --contents`): the layer
 * makes every packaged path root's, so each of these must be declared in the definition
 * with its owner.
 */
export async function nonRootPaths(debPath: string): Promise<string[]> {
  const { stdout } = await runCommand('dpkg-deb', ['--contents', debPath]);
  return nonRootPathsIn(stdout);
}

/** From a `dpkg-deb --contents` listing (`-rw-r--r-- root/root 9 2025-06-01 10:00 ./etc/x`). */
export function nonRootPathsIn(listing: string): string[] {
  const paths: string[] = [];
  for (const line of listing.split('\n')) {
    const m = /^\S+\s+([^/\s]+)\/(\S+)\s+\d+\s+\S+\s+\S+\s+\.(\/.*?)(?: -> .*| link to .*)?$/.exec(line);
    if (m && (m[1] !== 'root' || m[2] !== 'root')) paths.push(m[3]!.replace(/(.)\/$/, '$1'));
  }
  return paths;
}

/**
 * What Debian's slim container images leave out (dpkg `path-exclude`): manuals, info
 * pages, translations, lintian overrides and documentation, except each package's
 * copyright file, which its licence asks to ship with it.
 */
const PRUNED_DIRECTORIES = ['usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian'];

export async function pruneDocumentation(root: string): Promise<void> {
  for (const dir of PRUNED_DIRECTORIES) await rm(join(root, dir), { recursive: true, force: true });
  const docs = join(root, 'usr/share/doc');
  for (const name of await readdir(docs).catch(() => [] as string[])) {
    const dir = join(docs, name);
    const st = await lstat(dir);
    if (!st.isDirectory()) {
      await rm(dir, { force: true });
      continue;
    }
    for (const file of await readdir(dir)) if (file !== 'copyright') await rm(join(dir, file), { recursive: true, force: true });
    if ((await readdir(dir)).length === 0) await rm(dir, { recursive: true });
  }
}

/** A path component with `*` for any run of characters, as a regular expression. */
function componentPattern(component: string): RegExp {
  const literal = (text: string) => text.replace(/[.+?^$()|[\]{}\\]/g, (c) => `\\${c}`);
  return new RegExp(`^${component.split('*').map(literal).join('.*')}$`);
}

/** Removes what matches each pattern (`*` within one component) under `root`; returns the paths removed. */
export async function removeMatching(root: string, patterns: readonly string[]): Promise<string[]> {
  const removed: string[] = [];
  for (const pattern of patterns) {
    let matches = [''];
    for (const component of pattern.split('/').filter(Boolean)) {
      const re = componentPattern(component);
      const next: string[] = [];
      for (const dir of matches) {
        const names = await readdir(join(root, dir)).catch(() => [] as string[]);
        for (const name of names.sort()) if (re.test(name)) next.push(`${dir}/${name}`);
      }
      matches = next;
    }
    for (const path of matches) await rm(join(root, path), { recursive: true, force: true });
    removed.push(...matches);
  }
  return removed;
}

/**
 * Every path under `root` as a layer entry owned by root: modes as on disk, hard links
 * as links to the first name in path order. Only directories, files and symlinks are
 * allowed (no package in an image needs device nodes or sockets).
 */
export async function treeEntries(root: string): Promise<TarEntry[]> {
  const found: { path: string; st: Awaited<ReturnType<typeof lstat>> }[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(rel ? join(root, rel) : root)) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, path));
      found.push({ path, st });
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  found.sort((a, b) => comparePaths(a.path, b.path));
  const firstName = new Map<string, string>();
  const entries: TarEntry[] = [];
  for (const { path, st } of found) {
    const owner = { uid: 0, gid: 0 };
    const mode = Number(st.mode) & 0o7777;
    if (st.isDirectory()) entries.push({ type: 'directory', path, mode, ...owner });
    else if (st.isSymbolicLink()) entries.push({ type: 'symlink', path, target: await readlink(join(root, path)), ...owner });
    else if (st.isFile()) {
      const inode = `${st.dev}:${st.ino}`;
      const first = Number(st.nlink) > 1 ? firstName.get(inode) : undefined;
      if (first) entries.push({ type: 'hardlink', path, target: first, mode, ...owner });
      else {
        firstName.set(inode, path);
        entries.push({ type: 'file', path, mode, content: { file: join(root, path) }, ...owner });
      }
    } else throw new MemuError(`/${path} in the unpacked packages is neither a file, a directory nor a link`, ExitCode.badInput, 'an image definition cannot carry device nodes, sockets or pipes');
  }
  return entries;
}

/** `/etc/nginx` → `etc/nginx`, and its parents: `etc`. */
export function layerPath(absolute: string): string {
  return posix.normalize(absolute).replace(/^\/+/, '');
}
