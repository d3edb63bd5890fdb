import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readJsonIfPresent, writeFileAtomic, writeJsonDurably } from '../../../shared/files/durable-files.ts';
import { runCommand } from '../../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import type { Logger } from '../../host/log.ts';
import { newestKernel } from './slot-kernel.ts';

/**
 * Stage: initramfs. The root filesystem's initrd is made by the kernel package while
 * mmdebstrap installs it, before any overlay is laid on; when an overlay changes what an
 * initrd is made of (initramfs-tools' configuration, module options), the initrd is made
 * again in the staging tree with the tree's own mkinitramfs (through qemu-user for a
 * foreign architecture), so that what the overlay asks for is in the shipped one.
 *
 * Cached under a key of plain data: the root filesystem's key, the kernel, and the path
 * and sha256 of every overlay file that shapes the initrd; a change to the agent or any
 * other overlay reuses it.
 */

/** Paths in the root tree whose contents go into, or decide, the initrd. */
export const INITRAMFS_INPUT_PREFIXES = ['etc/initramfs-tools/', 'usr/share/initramfs-tools/', 'etc/modprobe.d/', 'usr/lib/modprobe.d/'] as const;

/** The module list initramfs-tools reads (one module name per line), checked against the built initrd. */
const MODULES_FILE = 'etc/initramfs-tools/modules';

export interface InitramfsKey {
  kind: 'memu-initramfs/1';
  rootfsKey: string;
  kernelVersion: string;
  /** Overlay files that shape the initrd, with their contents' sha256, sorted by path. */
  inputs: { path: string; sha256: string }[];
  sourceDateEpoch: number;
  /** Modules the initrd must carry (from the modules file, and the root file system's). */
  requiredModules: string[];
}

export interface InitramfsResult {
  /** Undefined when no overlay touches the initrd: the one the kernel package made is shipped. */
  key?: InitramfsKey;
  cacheHit: boolean;
  kernelVersion: string;
  /** Where each required module was found: a path in the initrd, or `built-in`. */
  modules: Record<string, string>;
  initrdBytes: number;
}

export function initramfsKeyDigest(key: InitramfsKey): string {
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
}

/** Module names initramfs-tools' modules file lists: first word of each line, comments and blank lines skipped. */
export function modulesFileEntries(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim().split(/\s+/)[0] ?? '')
    .filter((name) => name.length > 0);
}

/** Module names compare with `-` and `_` as one (modprobe's rule). */
const moduleId = (name: string) => name.replaceAll('-', '_');

/**
 * Where each module is: a `.ko` (possibly compressed) among the initrd's files, or built
 * into the kernel (`modules.builtin`); missing ones are left out of the answer.
 */
export function locateModules(required: readonly string[], initrdFiles: readonly string[], builtin: readonly string[]): Record<string, string> {
  const byId = new Map<string, string>();
  for (const file of initrdFiles) {
    const m = /\/([^/]+)\.ko(?:\.(?:xz|zst|gz))?$/.exec(file);
    if (m) byId.set(moduleId(m[1]!), file);
  }
  for (const file of builtin) {
    const m = /\/([^/]+)\.ko$/.exec(file.trim());
    if (m && !byId.has(moduleId(m[1]!))) byId.set(moduleId(m[1]!), 'built-in');
  }
  const found: Record<string, string> = {};
  for (const name of required) {
    const where = byId.get(moduleId(name));
    if (where) found[name] = where;
  }
  return found;
}

export async function prepareInitramfs(opts: {
  tree: string;
  /** Paths the overlays wrote, relative to the tree (applyOverlays' answer). */
  overlayPaths: readonly string[];
  rootfsKey: string;
  /** The root slot's file system: its module must be in the initrd. */
  rootFilesystem: string;
  sourceDateEpoch: number;
  cacheDir: string;
  log: Logger;
}): Promise<InitramfsResult> {
  const { tree, log } = opts;
  const kernelVersion = await newestKernel(tree);
  const initrdPath = join(tree, 'boot', `initrd.img-${kernelVersion}`);
  const inputPaths = [...new Set(opts.overlayPaths.filter((p) => INITRAMFS_INPUT_PREFIXES.some((prefix) => p.startsWith(prefix))))].sort();
  if (inputPaths.length === 0) {
    const size = await stat(initrdPath).then((s) => s.size, () => 0);
    return { cacheHit: true, kernelVersion, modules: {}, initrdBytes: size };
  }

  const inputs = await Promise.all(inputPaths.map(async (path) => ({ path, sha256: createHash('sha256').update(await readFile(join(tree, path))).digest('hex') })));
  const listed = await readFile(join(tree, MODULES_FILE), 'utf8').then(modulesFileEntries, () => []);
  const requiredModules = [...new Set([...listed, opts.rootFilesystem])];
  const key: InitramfsKey = { kind: 'memu-initramfs/1', rootfsKey: opts.rootfsKey, kernelVersion, inputs, sourceDateEpoch: opts.sourceDateEpoch, requiredModules };
  const digest = initramfsKeyDigest(key);
  const entryDir = join(opts.cacheDir, 'initramfs', digest);
  const cachedInitrd = join(entryDir, 'initrd.img');
  const entryFile = join(entryDir, 'entry.json');

  const entry = (await readJsonIfPresent(entryFile)) as { key: InitramfsKey; sha256: string; modules: Record<string, string> } | undefined;
  if (entry) {
    const bytes = await readFile(cachedInitrd).catch(() => undefined);
    if (bytes && createHash('sha256').update(bytes).digest('hex') === entry.sha256) {
      await replaceInitrd(initrdPath, cachedInitrd);
      log.info({ stage: 'initramfs', key: digest }, 'initrd cache hit');
      return { key, cacheHit: true, kernelVersion, modules: entry.modules, initrdBytes: bytes.length };
    }
    log.warn({ stage: 'initramfs', key: digest }, 'cached initrd does not match its recorded digest; making it again');
  } else {
    log.info({ stage: 'initramfs', key: digest, inputs: inputPaths }, 'initrd cache miss: making the initrd after the overlays');
  }

  // mkinitramfs writes a new file that is renamed over the old: the staging tree's files
  // are hard links into the root filesystem cache and must never be written in place.
  const fresh = `/boot/initrd.img-${kernelVersion}.memu-new`;
  await runCommand('chroot', [tree, 'mkinitramfs', '-o', fresh, kernelVersion], {
    env: { SOURCE_DATE_EPOCH: String(opts.sourceDateEpoch), LC_ALL: 'C.UTF-8', PATH: '/usr/sbin:/usr/bin:/sbin:/bin', TMPDIR: '/tmp' },
    onStderrLine: (line) => log.debug({ stage: 'initramfs' }, line),
  });
  await rename(join(tree, fresh), initrdPath);

  const files = (await runCommand('chroot', [tree, 'lsinitramfs', `/boot/initrd.img-${kernelVersion}`], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } })).stdout.split('\n');
  const builtin = await readFile(join(tree, 'usr/lib/modules', kernelVersion, 'modules.builtin'), 'utf8').then((t) => t.split('\n'), () => []);
  const modules = locateModules(requiredModules, files, builtin);
  const missing = requiredModules.filter((m) => !modules[m]);
  if (missing.length > 0) {
    throw new MemuError(
      `the initrd of kernel ${kernelVersion} lacks ${missing.join(', ')}: neither in it nor built into the kernel, though /${MODULES_FILE} (or the root file system, ${opts.rootFilesystem}) needs ${missing.length === 1 ? 'it' : 'them'}`,
      ExitCode.badInput,
      'check the module names in the overlay\'s etc/initramfs-tools/modules against the kernel\'s (`modinfo -k VERSION NAME` in the root tree), or install a kernel that has them',
    );
  }

  const bytes = await readFile(initrdPath);
  await rm(entryDir, { recursive: true, force: true });
  await mkdir(entryDir, { recursive: true });
  await writeFileAtomic(cachedInitrd, bytes);
  await writeJsonDurably(entryFile, { key, sha256: createHash('sha256').update(bytes).digest('hex'), modules });
  log.info({ stage: 'initramfs', key: digest, bytes: bytes.length, modules }, 'initrd made after the overlays');
  return { key, cacheHit: false, kernelVersion, modules, initrdBytes: bytes.length };
}

/** Puts the cached initrd at the tree's path by replacing the path (never writing through a hard link). */
async function replaceInitrd(initrdPath: string, cached: string): Promise<void> {
  const temporary = `${initrdPath}.memu-new`;
  await copyFile(cached, temporary);
  await rename(temporary, initrdPath);
}
