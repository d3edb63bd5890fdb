import { readdir, readFile, rm, stat, statfs, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { platformOf, type HardwareProfile } from '../../hardware/profile.ts';
import type { RegistryMirrors } from '../oci/reference.ts';
import { prepareStack } from './stack.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { cachePaths, memuCacheDir } from '../host/cache-dir.ts';
import { requireHostTools, type HostTool } from '../host/host-tools.ts';
import type { Logger } from '../host/log.ts';
import { formatBytes, type Progress } from '../host/progress.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../release/signing-keys.ts';
import { computeLayout, partitionByRole } from '../disk/layout.ts';
import { makeExt4 } from '../disk/ext4.ts';
import { makeFat } from '../disk/fat.ts';
import { createDisk } from '../disk/assemble.ts';
import type { LayoutPartition } from '../../shared/contracts/disk-layout.ts';
import { AGENT_INSTALL_DIR } from '../../shared/contracts/agent-install.ts';
import { bundleAgent, projectVersion } from './agent-bundle.ts';
import { checkImageNode } from './sqlite-addon.ts';
import { repoRoot } from '../host/repo-root.ts';
import { writeArtifacts, type ArtifactsResult, type PublishPoint } from './artifacts.ts';
import { bootBackendFor, prepareBoot } from './boot/boot-stage.ts';
import { prepareInitramfs } from './boot/initramfs.ts';
import { clampTreeTimes } from './clamp-times.ts';
import { listInstalledPackages } from './debian-packages.ts';
import { preparePinnedPackages } from './package-pins.ts';
import { buildRootfs, debCacheDir, keyDigest, rootfsPackages } from './rootfs.ts';
import { applyOverlays, createStagingTree, enableUnits, replaceFile } from './staging.ts';
import { resolveRaucKeyring, writeRaucConfig, type RaucKeyring } from './rauc-config.ts';

/**
 * `memu build`: one linear list of named stages (mkosi's build_image()), each a small
 * function from typed inputs to outputs:
 *
 *   [pins] -> rootfs -> overlays -> initramfs -> packages -> agent -> [stack] -> boot -> disk -> filesystems -> artifacts
 *
 * `rootfs` and `initramfs` are cached (their keys are manifests of their inputs); every
 * other stage takes seconds, so a change to the agent rebuilds from the cached trees.
 * Reproducible means: the same package versions and inputs give the same bytes, and
 * `pins` (--packages-from) installs the versions an earlier build recorded.
 */
export interface BuildConfig {
  profile: HardwareProfile;
  outDir: string;
  cacheDir: string;
  sourceDateEpoch: number;
  version: string;
  /** Seed for disk/partition GUIDs and filesystem UUIDs; fixed per profile by default. */
  layoutSeed: string;
  signingKeyPath?: string;
  /** The release CA devices check RAUC bundles against (/etc/rauc/keyring.pem); default: a development CA under the cache. */
  raucKeyringPath?: string;
  refreshRootfs?: boolean;
  /** Extra overlay directories laid on top of the repository's (factory certificates, branding). */
  extraOverlays?: string[];
  /** Container stack to install and preload: stack.yml (+ overrides) and images.lock.json. */
  stackDir?: string;
  /** Registry mirrors for preloading, e.g. { 'docker.io': '127.0.0.1:5000' }. */
  registryMirrors?: RegistryMirrors;
  /** An earlier build's manifest.json: install exactly the package versions it records. */
  packagesFrom?: string;
  /** Crash-test hook for the artifacts' publication (see writeArtifacts). */
  publishCheckpoint?: (point: PublishPoint) => Promise<void>;
}

export interface BuildResult {
  artifacts: ArtifactsResult;
  rootfsCacheHit: boolean;
  /** Also true when no overlay touches the initrd (the kernel package's is shipped). */
  initramfsCacheHit: boolean;
  stageSeconds: Record<string, number>;
  /** Which CA the image trusts for OS updates. */
  raucKeyring: Pick<RaucKeyring, 'identity' | 'source' | 'path'>;
}

/** Units enabled in every image, as `systemctl enable` would. */
const ENABLED_UNITS = ['memu-agent.service', 'memu-ssh-hostkeys.service', 'systemd-networkd.service', 'systemd-resolved.service'];

const BUILD_TOOLS: HostTool[] = ['mmdebstrap', 'sfdisk', 'mke2fs', 'debugfs', 'dumpe2fs', 'mkfs.vfat', 'mcopy', 'mmd', 'zstd', 'bmaptool'];

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
/** Free space on the shipped data partition beyond the preloaded images' estimate. */
const DATA_HEADROOM_MIB = 256;
/** Free space a build needs: the root tree (cold only), then filesystems, disk, zst. */
const FREE_FOR_ROOTFS = 2 * GiB;
const FREE_FOR_OUTPUT = 4 * GiB;

export async function defaultSourceDateEpoch(): Promise<number> {
  if (process.env.SOURCE_DATE_EPOCH) {
    const v = Number(process.env.SOURCE_DATE_EPOCH);
    if (!Number.isInteger(v) || v < 0) throw new MemuError(`SOURCE_DATE_EPOCH must be whole seconds since 1970, got "${process.env.SOURCE_DATE_EPOCH}"`);
    return v;
  }
  const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { memu: { sourceDateEpoch: number } };
  return pkg.memu.sourceDateEpoch;
}

export async function defaultBuildConfig(profile: HardwareProfile, overrides: Partial<BuildConfig> = {}): Promise<BuildConfig> {
  return {
    profile,
    outDir: resolve(overrides.outDir ?? join('out', profile.name)),
    cacheDir: memuCacheDir(overrides.cacheDir),
    sourceDateEpoch: overrides.sourceDateEpoch ?? (await defaultSourceDateEpoch()),
    version: overrides.version ?? (await projectVersion()),
    layoutSeed: overrides.layoutSeed ?? `memu-os:${profile.name}`,
    signingKeyPath: overrides.signingKeyPath ?? process.env.MEMU_SIGNING_KEY,
    raucKeyringPath: overrides.raucKeyringPath ? resolve(overrides.raucKeyringPath) : undefined,
    refreshRootfs: overrides.refreshRootfs,
    extraOverlays: (overrides.extraOverlays ?? []).map((d) => resolve(d)),
    stackDir: overrides.stackDir ? resolve(overrides.stackDir) : undefined,
    registryMirrors: overrides.registryMirrors ?? {},
    packagesFrom: overrides.packagesFrom ? resolve(overrides.packagesFrom) : undefined,
    publishCheckpoint: overrides.publishCheckpoint,
  };
}

export async function buildImage(config: BuildConfig, log: Logger, progress: Progress): Promise<BuildResult> {
  const { profile } = config;
  const stageSeconds: Record<string, number> = {};
  const stage = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    progress.stage(name);
    try {
      const result = await run();
      stageSeconds[name] = (Date.now() - started) / 1000;
      progress.done();
      return result;
    } catch (err) {
      progress.done('failed');
      throw err;
    }
  };

  const bootBackend = bootBackendFor(profile);
  await preflight(config);
  const signingKey = await resolveSigningKey(config, log);
  // Before the long stages, so that a bad --rauc-keyring fails at once.
  const raucKeyring = await resolveRaucKeyring({ keyringPath: config.raucKeyringPath, cacheDir: config.cacheDir, log });
  await mkdir(config.outDir, { recursive: true });
  await removeStaleWorkDirs(config.outDir);
  const workDir = join(config.outDir, `.memu-work-${process.pid}`);
  await mkdir(workDir, { recursive: true });
  const tree = join(workDir, 'root');

  try {
    const pins = config.packagesFrom
      ? await stage('pins', () =>
          preparePinnedPackages({
            manifestPath: config.packagesFrom!,
            profile,
            includePackages: rootfsPackages(profile),
            debCache: debCacheDir(config.cacheDir, profile),
            workDir,
            log,
          }),
        )
      : undefined;

    const rootfs = await stage('rootfs', () =>
      buildRootfs({
        profile,
        sourceDateEpoch: config.sourceDateEpoch,
        cacheDir: config.cacheDir,
        refresh: config.refreshRootfs,
        pinned: pins && { sha256: pins.sha256, repoDir: pins.repoDir },
        log,
      }),
    );

    const overlayPaths = await stage('overlays', async () => {
      await createStagingTree(rootfs.tree, tree);
      const overlayDirs = [join(repoRoot, 'overlays/common'), join(repoRoot, 'overlays', profile.name), ...(config.extraOverlays ?? [])];
      const written = await applyOverlays(tree, overlayDirs);
      // RAUC's slots come from the partitions' labels, which the data partition's final size does not change.
      written.push(...(await writeRaucConfig(tree, { layout: computeLayout(profile, config.layoutSeed), keyringPem: raucKeyring.pem })));
      await enableUnits(tree, ENABLED_UNITS);
      log.info({ files: written.length, raucKeyring: { source: raucKeyring.source, certificates: raucKeyring.identity.certificates } }, 'overlays applied');
      return written;
    });

    // An overlay that changes initramfs-tools' settings (the Pi 5's modules) needs the initrd made again.
    const initramfs = await stage('initramfs', () =>
      prepareInitramfs({
        tree,
        overlayPaths,
        rootfsKey: keyDigest(rootfs.key),
        rootFilesystem: profile.partitions.find((p) => p.role === 'root-a')!.filesystem,
        sourceDateEpoch: config.sourceDateEpoch,
        cacheDir: config.cacheDir,
        log,
      }),
    );

    // The package database is final once the root filesystem is built: read it once, for
    // the manifest and for the agent's Node.
    const packages = await stage('packages', () => listInstalledPackages(tree));

    const agent = await stage('agent', async () => {
      const bundle = await bundleAgent({ version: config.version, arch: profile.arch, cacheDir: config.cacheDir, log });
      checkImageNode(packages.find((p) => p.name === 'nodejs')?.version, bundle.sqliteAddon);
      for (const file of bundle.files) await replaceFile(tree, `${AGENT_INSTALL_DIR}/${file.name}`, file.contents);
      return bundle;
    });

    const stack = config.stackDir
      ? await stage('stack', () =>
          prepareStack({
            stackDir: config.stackDir!,
            tree,
            workDir,
            platform: platformOf(profile),
            blobCacheDir: cachePaths(config.cacheDir).blobs,
            registryMirrors: config.registryMirrors ?? {},
            log,
            progress,
          }),
        )
      : undefined;

    // The data partition holds the preloaded images with room to spare (balena's x1.4 rule).
    const dataMiB = stack ? Math.ceil(stack.preload.estimatedPartitionBytes / MiB) + DATA_HEADROOM_MIB : undefined;
    const shippedData = profile.partitions.find((p) => p.role === 'data')!.sizeMiB;
    const layout = computeLayout(profile, config.layoutSeed, dataMiB && dataMiB > shippedData ? { data: dataMiB } : {});

    const boot = await stage('boot', () => prepareBoot({ backend: bootBackend, tree, workDir, profile, layout }));

    const workImage = join(workDir, `memu-${profile.name}-${config.version}.img`);
    await stage('disk', () => createDisk(workImage, layout));

    await stage('filesystems', async () => {
      await clampTreeTimes(tree, config.sourceDateEpoch);
      const at = (role: LayoutPartition['role']) => {
        const p = partitionByRole(layout, role);
        return { part: p, target: { file: workImage, offsetBytes: p.startBytes, sizeBytes: p.sizeBytes } };
      };
      const root = at('root-a');
      const data = at('data');
      await makeExt4({ target: root.target, uuid: root.part.fsUuid, label: root.part.label, sourceDir: tree, epoch: config.sourceDateEpoch });
      // The data partition ships with the preloaded images (or empty) and grows to fill the drive on first boot.
      await makeExt4({ target: data.target, uuid: data.part.fsUuid, label: data.part.label, sourceDir: stack?.dataDir, epoch: config.sourceDateEpoch, reservedPercent: 1 });
      for (const fat of boot.fatPartitions) {
        const p = at(fat.role);
        await makeFat({ target: p.target, volumeId: p.part.fsUuid.replace('-', ''), label: fat.volumeLabel, sourceDir: fat.sourceDir, epoch: config.sourceDateEpoch });
      }
    });

    const artifacts = await stage('artifacts', () =>
      writeArtifacts({
        workImage,
        workDir,
        outDir: config.outDir,
        baseName: `memu-${profile.name}-${config.version}`,
        signingKey,
        checkpoint: config.publishCheckpoint,
        manifest: {
          format: 'memu-image-manifest/1',
          product: 'memu-os',
          version: config.version,
          profile: profile.name,
          arch: profile.arch,
          sourceDateEpoch: config.sourceDateEpoch,
          rootfs: { key: keyDigest(rootfs.key), suite: rootfs.key.suite, mirror: rootfs.key.mirror },
          kernel: boot.kernelVersion,
          agent: { version: agent.version, sha256: agent.sha256 },
          layout,
          packages,
          ...(pins ? { packagesPinnedFrom: { version: pins.from.version, manifestSha256: pins.from.manifestSha256 } } : {}),
          containerImages: stack?.images ?? [],
          raucKeyring: { source: raucKeyring.source, certificates: raucKeyring.identity.certificates },
        },
      }),
    );
    log.info(
      { dir: config.outDir, image: formatBytes(artifacts.manifest.sizes.imageBytes), mapped: formatBytes(artifacts.manifest.sizes.mappedBytes), zst: formatBytes(artifacts.manifest.sizes.zstBytes), stageSeconds },
      'image built',
    );
    return {
      artifacts,
      rootfsCacheHit: rootfs.cacheHit,
      initramfsCacheHit: initramfs.cacheHit,
      stageSeconds,
      raucKeyring: { identity: raucKeyring.identity, source: raucKeyring.source, path: raucKeyring.path },
    };
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
}

async function preflight(config: BuildConfig): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new MemuError('memu build must run as root (mmdebstrap builds the root filesystem with real owners and device nodes)', ExitCode.environment, 'run it with sudo, or as root in a build container');
  }
  await requireHostTools(BUILD_TOOLS);
  for (const dir of config.extraOverlays ?? []) {
    const isDir = await stat(dir).then((s) => s.isDirectory(), () => false);
    if (!isDir) throw new MemuError(`overlay ${dir} is not a directory`, ExitCode.badInput, 'pass --overlay DIR with a directory laid out like the root filesystem (etc/..., usr/...)');
  }
  await requireFreeSpace(config.outDir, FREE_FOR_OUTPUT, 'the image and its artifacts');
  await requireFreeSpace(config.cacheDir, FREE_FOR_ROOTFS, 'the root filesystem cache');
}

async function requireFreeSpace(dir: string, needBytes: number, forWhat: string): Promise<void> {
  // The directory may not exist yet: check the nearest existing parent.
  let probe = dir;
  for (;;) {
    try {
      const s = await statfs(probe);
      const free = s.bavail * s.bsize;
      if (free < needBytes) {
        throw new MemuError(
          `not enough free disk space in ${dir} for ${forWhat}: ${formatBytes(free)} free, about ${formatBytes(needBytes)} needed`,
          ExitCode.environment,
          'free some space, or choose another place with --out / --cache-dir (or MEMU_CACHE_DIR)',
        );
      }
      return;
    } catch (err) {
      if (err instanceof MemuError) throw err;
      const parent = resolve(probe, '..');
      if (parent === probe) throw err;
      probe = parent;
    }
  }
}

async function resolveSigningKey(config: BuildConfig, log: Logger): Promise<SigningKey> {
  if (config.signingKeyPath) return loadSigningKey(config.signingKeyPath);
  const base = developmentKeyBase(config.cacheDir);
  await mkdir(cachePaths(config.cacheDir).keys, { recursive: true });
  const existing = await loadSigningKey(`${base}.key`).catch(() => undefined);
  if (existing) {
    log.warn({ key: `${base}.key`, keyId: existing.keyId }, 'signing with the local development key; pass --key (or MEMU_SIGNING_KEY) for release builds');
    return existing;
  }
  const made = await generateSigningKey(base);
  log.warn({ key: made.keyPath, keyId: made.keyId }, 'made a local development signing key; pass --key (or MEMU_SIGNING_KEY) for release builds');
  return loadSigningKey(made.keyPath);
}

/** The development key `memu verify` trusts when no --key is given. */
export function developmentPublicKeyPath(cacheDir = memuCacheDir()): string {
  return `${developmentKeyBase(cacheDir)}.pub`;
}

function developmentKeyBase(cacheDir: string): string {
  return join(cachePaths(cacheDir).keys, 'dev-signing');
}

async function removeStaleWorkDirs(outDir: string): Promise<void> {
  for (const name of await readdir(outDir)) {
    const m = /^\.memu-work-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = pid !== process.pid;
    } catch {
      alive = false;
    }
    if (!alive) await rm(join(outDir, name), { recursive: true, force: true });
  }
}
