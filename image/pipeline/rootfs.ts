import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { HardwareProfile, KernelPin } from '../../hardware/profile.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { cachePaths } from '../host/cache-dir.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { clampTreeTimes } from './clamp-times.ts';
import { listInstalledPackages, overridesInIndexes, storeArchiveOverrides } from './debian-packages.ts';
import { PrivateApt } from './private-apt.ts';
import { treeDigest } from './tree-digest.ts';

/**
 * Stage 1: the Debian root filesystem, built by mmdebstrap and cached under a key that is
 * a manifest of every input (mkosi's approach). A miss says which input changed; a cached
 * entry whose contents no longer match its recorded digest is rebuilt.
 */

/** What every Memu root filesystem has, whatever the target. */
export const BASE_PACKAGES = [
  'systemd',
  'systemd-sysv',
  'systemd-resolved',
  'systemd-timesyncd',
  'udev',
  'dbus',
  'kmod',
  'iproute2',
  'ca-certificates',
  'initramfs-tools',
  'zstd',
  'nodejs',
  'docker.io',
  'fdisk',
  'e2fsprogs',
  'util-linux',
  'mtools',
  'dosfstools',
  'procps',
  'openssh-server',
  // The family's backups (agent/backups): encrypted, deduplicated, to a USB drive or off-site.
  'restic',
  // OS updates into the idle root slot (/etc/rauc/system.conf, image/pipeline/rauc-config.ts).
  // rauc-service holds rauc.service, started only by D-Bus activation when `rauc install`
  // or `rauc status` asks (no [Install] section: nothing runs at boot); the rauc CLI of
  // Debian's build talks to it over D-Bus.
  'rauc',
  'rauc-service',
  // /usr/share/zoneinfo for the preseeded time zone.
  'tzdata',
  // Factory QA runs on every unit before it ships (agent/factory-qa/checks): the memory
  // test, the disk speed, the load for the thermal check, the NVMe drive's health.
  'memtester',
  'fio',
  // stress, not stress-ng: Debian's stress-ng pulls in Mesa and LLVM (about 230 MB).
  'stress',
  'nvme-cli',
] as const;

/**
 * Shell run inside mmdebstrap's customize phase. Part of the cache key by content.
 * mmdebstrap copies the build host's hostname and resolv.conf; SSH host keys must be
 * made per device on first boot, never shipped. nvme-cli's install makes a random NVMe
 * host identity (`/etc/nvme/hostid`, `hostnqn`, for NVMe over fabrics only): shipped, every
 * unit would share one and no two builds would be byte-identical.
 */
export const CUSTOMIZE_HOOK = [
  'rm -f "$1/etc/hostname" "$1/etc/resolv.conf"',
  'rm -f "$1"/etc/ssh/ssh_host_*',
  'rm -f "$1/etc/nvme/hostid" "$1/etc/nvme/hostnqn"',
  'rm -f "$1"/var/cache/apt/archives/*.deb "$1"/var/cache/apt/*.bin',
  ': > "$1/etc/machine-id"',
].join(' && ');

export interface RootfsKey {
  kind: 'memu-rootfs/1';
  suite: string;
  mirror: string;
  components: string[];
  arch: string;
  variant: 'minbase';
  packages: string[];
  extraAptSources: HardwareProfile['rootfs']['extraAptSources'];
  customizeHookSha256: string;
  mmdebstrapVersion: string;
  sourceDateEpoch: number;
  /** Set for a pinned build (`--packages-from`): sha256 of the exact package versions installed. */
  pinnedPackagesSha256?: string;
  /** The profile's kernel, pinned by version (its package and companions are also in `packages`). */
  kernel?: KernelPin;
}

/** The packages a profile's root filesystem asks for by name (their dependencies come along). */
export function rootfsPackages(profile: HardwareProfile): string[] {
  const kernel = profile.rootfs.kernel;
  return [...new Set([...BASE_PACKAGES, ...profile.rootfs.packages, ...(kernel ? [kernel.package, ...kernel.fromSuite] : [])])].sort();
}

/**
 * What mmdebstrap is asked to install: the packages by name, except a pinned kernel at its
 * version (`name=version`) and its companions from its suite (`name/suite`): apt would
 * otherwise take the default suite's kernel, or refuse the backports kernel's newer
 * pre-dependencies. A pinned build (`--packages-from`) names only packages: its local
 * repository has exactly one version of each.
 */
export function includeSpecs(key: Pick<RootfsKey, 'packages' | 'kernel'>, pinnedBuild: boolean): string[] {
  const kernel = key.kernel;
  if (!kernel || pinnedBuild) return key.packages;
  return key.packages.map((name) => (name === kernel.package ? `${name}=${kernel.version}` : kernel.fromSuite.includes(name) ? `${name}/${kernel.suite}` : name));
}

export async function rootfsKey(profile: HardwareProfile, sourceDateEpoch: number, pinnedPackagesSha256?: string): Promise<RootfsKey> {
  const { stdout } = await runCommand('mmdebstrap', ['--version']);
  return {
    kind: 'memu-rootfs/1',
    suite: profile.rootfs.suite,
    mirror: profile.rootfs.mirror,
    components: [...profile.rootfs.components],
    arch: profile.arch,
    variant: 'minbase',
    packages: rootfsPackages(profile),
    extraAptSources: profile.rootfs.extraAptSources,
    customizeHookSha256: createHash('sha256').update(CUSTOMIZE_HOOK).digest('hex'),
    mmdebstrapVersion: stdout.trim(),
    sourceDateEpoch,
    ...(pinnedPackagesSha256 ? { pinnedPackagesSha256 } : {}),
    ...(profile.rootfs.kernel ? { kernel: profile.rootfs.kernel } : {}),
  };
}

export function keyDigest(key: RootfsKey): string {
  return createHash('sha256').update(JSON.stringify(key)).digest('hex').slice(0, 24);
}

/** Names the key fields that differ, so a cache miss explains itself. */
export function explainKeyChange(previous: RootfsKey | undefined, current: RootfsKey): string[] {
  if (!previous) return ['no earlier build of this profile in the cache'];
  const changed: string[] = [];
  for (const field of [...new Set([...Object.keys(previous), ...Object.keys(current)])] as (keyof RootfsKey)[]) {
    if (JSON.stringify(previous[field]) !== JSON.stringify(current[field])) {
      if (field === 'packages') {
        const added = current.packages.filter((p) => !previous.packages.includes(p));
        const removed = previous.packages.filter((p) => !current.packages.includes(p));
        changed.push(`packages (${[...added.map((p) => `+${p}`), ...removed.map((p) => `-${p}`)].join(' ')})`);
      } else changed.push(`${field} (${JSON.stringify(previous[field])} -> ${JSON.stringify(current[field])})`);
    }
  }
  return changed.length ? changed : ['cache entry missing or unusable'];
}

interface CacheEntry {
  key: RootfsKey;
  tree: { digest: string; files: number; bytes: number };
  createdAt: string;
}

export interface RootfsResult {
  /** A read-only root tree; later stages must never modify files in it. */
  tree: string;
  key: RootfsKey;
  cacheHit: boolean;
  files: number;
  bytes: number;
}

export async function buildRootfs(opts: {
  profile: HardwareProfile;
  sourceDateEpoch: number;
  cacheDir: string;
  /** Ignore a cached tree and build afresh (the cache entry is replaced). */
  refresh?: boolean;
  /** Install exactly these versions, from this local repository (see package-pins.ts). */
  pinned?: { sha256: string; repoDir: string };
  log: Logger;
}): Promise<RootfsResult> {
  const { profile, log } = opts;
  const key = await rootfsKey(profile, opts.sourceDateEpoch, opts.pinned?.sha256);
  const digest = keyDigest(key);
  const entryDir = join(cachePaths(opts.cacheDir).rootfs, digest);
  const tree = join(entryDir, 'tree');
  const entryFile = join(entryDir, 'entry.json');
  const lastKeyFile = join(cachePaths(opts.cacheDir).rootfs, `last-${profile.name}.json`);

  if (!opts.refresh) {
    const entry = await readJson<CacheEntry>(entryFile);
    if (entry) {
      const actual = await treeDigest(tree).catch(() => undefined);
      if (actual && actual.digest === entry.tree.digest) {
        log.info({ stage: 'rootfs', key: digest, files: actual.files }, 'root filesystem cache hit');
        return { tree, key, cacheHit: true, files: actual.files, bytes: actual.bytes };
      }
      log.warn({ stage: 'rootfs', key: digest }, 'cached root filesystem does not match its recorded digest (corrupted or edited); rebuilding it');
    } else {
      const previous = await readJson<RootfsKey>(lastKeyFile);
      log.info({ stage: 'rootfs', key: digest, why: explainKeyChange(previous, key) }, 'root filesystem cache miss');
    }
  }

  // Build into a fresh directory next to the entry, then swap it in: an interrupted build
  // leaves no entry.json, so it is never mistaken for a finished one.
  await rm(entryDir, { recursive: true, force: true });
  const building = `${entryDir}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await mkdir(building, { recursive: true });
  const debCache = debCacheDir(opts.cacheDir, profile);
  await mkdir(debCache, { recursive: true });
  const indexes = join(building, 'apt-indexes');
  await mkdir(indexes);

  try {
    // A pinned build's versions were checked by the pins stage; otherwise the archive must
    // still have the pinned kernel, which is cheaper to learn now than after mmdebstrap.
    if (!opts.pinned) await checkPinnedKernel(profile, building, log);
    await runCommand('mmdebstrap', mmdebstrapArgs(key, join(building, 'tree'), debCache, { indexesOut: indexes, pinnedRepo: opts.pinned?.repoDir }), {
      env: { SOURCE_DATE_EPOCH: String(key.sourceDateEpoch), LC_ALL: 'C.UTF-8' },
      onStderrLine: (line) => log.debug({ stage: 'rootfs' }, line),
    });
    // A pinned build's index is our own; only the archive's says what the archive assigned.
    if (!opts.pinned) await storeArchiveOverrides(debCache, await overridesInIndexes(indexes, await listInstalledPackages(join(building, 'tree'))));
    await rm(indexes, { recursive: true, force: true });
    await clampTreeTimes(join(building, 'tree'), key.sourceDateEpoch);
    const summary = await treeDigest(join(building, 'tree'));
    const entry: CacheEntry = { key, tree: summary, createdAt: new Date().toISOString() };
    // The entry file goes in before the rename, so the entry appears whole or not at all.
    await writeFileAtomic(join(building, 'entry.json'), JSON.stringify(entry, null, 2));
    const published = await rename(building, entryDir).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
        return false;
      },
    );
    await writeFileAtomic(lastKeyFile, JSON.stringify(key, null, 2));
    if (!published) {
      // Another build of the same inputs finished first: its tree is the one to use.
      await rm(building, { recursive: true, force: true });
      log.info({ stage: 'rootfs', key: digest }, 'another build made this root filesystem at the same time; using its tree');
    }
    return { tree, key, cacheHit: !published, files: summary.files, bytes: summary.bytes };
  } catch (err) {
    await rm(building, { recursive: true, force: true });
    throw err;
  }
}

/** Where a profile's downloaded .debs are kept: `<cache>/debs/<suite>-<arch>`. */
export function debCacheDir(cacheDir: string, profile: HardwareProfile): string {
  return join(cachePaths(cacheDir).debs, `${profile.rootfs.suite}-${profile.arch}`);
}

/**
 * mmdebstrap's arguments for a key. `indexesOut` receives a copy of the archive's
 * Packages indexes before mmdebstrap removes them. `pinnedRepo` makes a local repository
 * the only source apt sees while installing; the tree's sources.list is still the one the
 * key's mirrors give, restored before anything else looks at it.
 */
export function mmdebstrapArgs(key: RootfsKey, target: string, debCache: string, extra: { indexesOut?: string; pinnedRepo?: string } = {}): string[] {
  const args = [
    '--mode=root',
    `--variant=${key.variant}`,
    `--arch=${key.arch}`,
    `--components=${key.components.join(',')}`,
    `--include=${includeSpecs(key, Boolean(extra.pinnedRepo)).join(',')}`,
    // Keep downloaded .debs between builds: a rebuild after a package change downloads only that package.
    '--skip=essential/unlink',
    '--skip=download/empty',
    '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
    `--setup-hook=sync-in '${debCache}' /var/cache/apt/archives/`,
    `--customize-hook=sync-out /var/cache/apt/archives '${debCache}'`,
    `--customize-hook=${CUSTOMIZE_HOOK}`,
  ];
  if (extra.indexesOut) args.push(`--customize-hook=find "$1/var/lib/apt/lists" -maxdepth 1 -name '*_Packages' -exec cp {} '${extra.indexesOut}/' ';'`);
  if (extra.pinnedRepo) {
    const saved = `${extra.pinnedRepo}/sources.list.of-the-tree`;
    args.push(
      `--setup-hook=cp "$1/etc/apt/sources.list" '${saved}' && echo 'deb [trusted=yes] copy://${extra.pinnedRepo} ./' > "$1/etc/apt/sources.list"`,
      `--customize-hook=cat '${saved}' > "$1/etc/apt/sources.list"`,
    );
  }
  for (const src of key.extraAptSources) {
    if (src.keyring) args.push(`--keyring=${src.keyring}`);
  }
  args.push(key.suite, target, key.mirror);
  for (const src of key.extraAptSources) {
    const signed = src.keyring ? ` [signed-by=${src.keyring}]` : '';
    for (const suite of src.suites) args.push(`deb${signed} ${src.uri} ${suite} ${src.components.join(' ')}`);
  }
  return args;
}

/**
 * Fails with the archive's current kernel named when the profile's pinned kernel version is
 * no longer in its suite (backports keep only the newest few). Asks the suite's index only
 * (a few hundred kB), not the whole distribution's.
 */
export async function checkPinnedKernel(profile: HardwareProfile, workDir: string, log: Logger): Promise<void> {
  const kernel = profile.rootfs.kernel;
  if (!kernel) return;
  const source =
    kernel.suite === profile.rootfs.suite
      ? { uri: profile.rootfs.mirror, components: profile.rootfs.components, keyring: undefined }
      : profile.rootfs.extraAptSources.find((s) => s.suites.includes(kernel.suite))!;
  const apt = await PrivateApt.open([{ uri: source.uri, suites: [kernel.suite], components: source.components, signedBy: source.keyring }], profile.arch, workDir);
  const pinned = `${kernel.package} ${kernel.version}`;
  try {
    try {
      await apt.update();
    } catch (err) {
      throw new MemuError(
        `cannot ask ${source.uri} ${kernel.suite} whether it still has the pinned kernel ${pinned}: ${(err as Error).message.split('\n').slice(-2).join(' / ')}`,
        ExitCode.environment,
        'connect to the archive (the root filesystem is not cached yet, so the build needs it anyway)',
      );
    }
    const offered = await apt.availableVersions([kernel.package, kernel.metaPackage]);
    if (offered.get(kernel.package)?.has(kernel.version)) {
      log.info({ stage: 'rootfs', kernel: pinned, suite: kernel.suite }, 'pinned kernel is in the archive');
      return;
    }
    const current = await currentKernel(apt, kernel.metaPackage);
    throw new MemuError(
      `pinned kernel ${pinned} is no longer in ${kernel.suite} (${source.uri}): ${current ? `the archive's current ${kernel.metaPackage} is ${current.package} ${current.version}` : `the archive has no ${kernel.metaPackage} there`}`,
      ExitCode.badInput,
      current
        ? `pick the current one: set rootfs.kernel in hardware/profiles/${profile.name}.ts to package '${current.package}', version '${current.version}' (what \`apt-cache show ${kernel.metaPackage}/${kernel.suite}\` depends on), then build again; or rebuild an earlier release with --packages-from its manifest.json, which takes the kernel from the deb cache`
        : `check the profile's kernel suite and archive; rebuild an earlier release with --packages-from its manifest.json`,
    );
  } finally {
    await apt.close();
  }
}

/** The versioned kernel package the suite's meta-package depends on now. */
async function currentKernel(apt: PrivateApt, metaPackage: string): Promise<{ package: string; version: string } | undefined> {
  // apt-cache madison lists the highest version first; the set keeps that order.
  const newest = [...((await apt.availableVersions([metaPackage])).get(metaPackage) ?? [])][0];
  if (!newest) return undefined;
  const depends = (await apt.indexFields(metaPackage, newest)).Depends ?? '';
  const image = /(?:^|,\s*)(linux-image-\d[^\s,(]*)\s*\(=\s*([^)\s]+)\)/.exec(depends);
  return image ? { package: image[1]!, version: image[2]! } : undefined;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    await stat(path);
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
