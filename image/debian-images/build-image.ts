import { lstat, mkdir, rm } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { Platform } from '../../shared/contracts/image-lock.ts';
import { readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import { loadCredentials } from '../oci/credentials.ts';
import { platformParts } from '../oci/manifest.ts';
import { cachedDeb, DebianArchive, readControl } from './deb-archive.ts';
import { groupFile, ownerIds, PACKAGES_LIST_PATH, passwdFile, type ImageDefinition } from './definition.ts';
import { writeTar, type TarEntry } from './layer-tar.ts';
import { gzipLayer, imageConfig, imageIndex, imageManifest, writeImageLayout, type Blob, type Layer } from './oci-image.ts';
import { parsePushReference, pushImage, type ImageToPush, type PushedImage } from './push.ts';
import { resolvePackages, type PackageControl } from './resolve-packages.ts';
import { layerPath, nonRootPaths, pruneDocumentation, removeMatching, treeEntries, unpackDebs } from './root-tree.ts';

/**
 * `memu image build`: an OCI image from Debian packages, for each platform, without
 * Docker and without running anything of the target architecture. One linear list of
 * steps per platform — packages (resolve, fetch), unpack, layers, config — then the
 * index over the platforms, an OCI image layout on disk, and optionally a push.
 *
 * Two layers: the packages (what the .debs hold, owned by root, documentation pruned)
 * and the definition's own files (users and groups, directories, configuration, the
 * package list), so a configuration change leaves the larger layer as it was.
 */

export interface BuildImageOptions {
  definition: ImageDefinition;
  platforms: Platform[];
  /** memu's cache directory: the .debs and resolved package sets live under debian-images/. */
  cacheDir: string;
  /** Where the OCI image layout is written. */
  outDir: string;
  sourceDateEpoch: number;
  /** Ask the archive again even when this package set was resolved before. */
  refreshPackages?: boolean;
  /** `REGISTRY/REPO:TAG` to push to. */
  push?: string;
  log: Logger;
  progress: Progress;
}

export interface RecordedPackage {
  name: string;
  version: string;
  arch: string;
}

export interface BuiltPlatform {
  platform: Platform;
  manifest: string;
  config: string;
  layers: { digest: string; size: number; diffId: string; tarSize: number }[];
  /** Sum of the compressed layers: what a registry stores and a pull downloads. */
  compressedBytes: number;
  /** Sum of the uncompressed layers: about what the image takes on disk. */
  unpackedBytes: number;
  packages: RecordedPackage[];
  /** `recorded`: versions resolved by an earlier build and their cached .debs, no archive asked. */
  packagesFrom: 'recorded' | 'archive';
  stageSeconds: Record<string, number>;
}

export interface BuiltImage {
  definition: string;
  /** The image index's digest. */
  index: string;
  platforms: BuiltPlatform[];
  layout: string;
  pushed?: PushedImage;
  seconds: number;
}

export function debianImagePaths(cacheDir: string) {
  const root = join(cacheDir, 'debian-images');
  return {
    /** .debs per suite and architecture (apart from the pipeline's deb cache, which goes into root filesystems). */
    debs: (suite: string, arch: string) => join(root, 'debs', `${suite}-${arch}`),
    /** The package set each definition resolved to, per architecture. */
    resolved: (name: string, arch: string) => join(root, 'resolved', `${name}-${arch}.json`),
    work: join(root, 'work'),
  };
}

export async function buildDebianImage(opts: BuildImageOptions): Promise<BuiltImage> {
  const started = Date.now();
  const { definition, log } = opts;
  // A bad reference is refused before the work, not after it.
  if (opts.push) parsePushReference(opts.push);
  const created = new Date(opts.sourceDateEpoch * 1000).toISOString().replace(/\.000Z$/, 'Z');
  const built: { platform: BuiltPlatform; manifest: Blob; config: Blob; layers: Layer[] }[] = [];
  for (const platform of opts.platforms) built.push(await buildPlatform(opts, platform, created));

  const index = imageIndex(built.map((b) => ({ platform: b.platform.platform, manifest: b.manifest })));
  const layout = resolve(opts.outDir);
  await writeImageLayout(layout, index, built.flatMap((b) => [b.manifest, b.config, ...b.layers]), definition.name);
  log.info({ definition: definition.name, index: index.digest, layout }, 'image written');

  let pushed: PushedImage | undefined;
  if (opts.push) {
    const image: ImageToPush = { index, manifests: built.map((b) => ({ manifest: b.manifest, config: b.config, layers: b.layers })) };
    const total = built.reduce((n, b) => n + b.platform.compressedBytes, 0);
    opts.progress.stage('push', total);
    let sent = 0;
    const credentials = await loadCredentials().catch((err: Error) => {
      throw new MemuError(err.message, ExitCode.badInput, 'fix MEMU_REGISTRY_AUTH or ~/.docker/config.json');
    });
    pushed = await pushImage(opts.push, image, { credentials, log, onBytes: (n) => opts.progress.bytes((sent += n)) });
    opts.progress.done(`${opts.push}@${pushed.digest}`);
  }
  return { definition: definition.name, index: index.digest, platforms: built.map((b) => b.platform), layout, pushed, seconds: (Date.now() - started) / 1000 };
}

async function buildPlatform(opts: BuildImageOptions, platform: Platform, created: string) {
  const { definition, log, progress } = opts;
  const arch = platformParts(platform).architecture;
  const paths = debianImagePaths(opts.cacheDir);
  const stageSeconds: Record<string, number> = {};
  const timed = async <T>(stage: string, fn: () => Promise<T>, summary?: (r: T) => string): Promise<T> => {
    const t = Date.now();
    progress.stage(`${platform} ${stage}`);
    const r = await fn();
    stageSeconds[stage] = Math.round((Date.now() - t) / 100) / 10;
    progress.done(summary?.(r));
    return r;
  };

  const work = join(paths.work, `${definition.name}-${arch}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const { packages, from } = await timed('packages', () => packageSet(opts, arch, work), (r) => `${r.packages.length} packages (${r.from === 'recorded' ? 'resolved before, .debs cached' : 'from the archive'})`);

    const root = join(work, 'root');
    await timed('unpack', async () => {
      await mkdir(root);
      await unpackDebs(packages.map((p) => p.debPath), root);
      await requireDeclaredOwners(definition, packages);
      await pruneDocumentation(root);
      const removed = await removeMatching(root, definition.removePaths.map((r) => r.path));
      log.debug({ removed }, 'paths the definition leaves out');
    });

    const layers = await timed(
      'layers',
      async () => [
        await gzipLayer(await writeTar(await treeEntries(root), opts.sourceDateEpoch)),
        await gzipLayer(await writeTar(await definitionEntries(definition, packages, root), opts.sourceDateEpoch)),
      ],
      (ls) => ls.map((l) => `${(l.size / 1024 / 1024).toFixed(1)} MiB`).join(' + '),
    );

    const recorded = packages.map((p) => ({ name: p.name, version: p.version, arch: p.arch }));
    const config = imageConfig({
      definition,
      platform,
      created,
      layers: [
        { diffId: layers[0]!.diffId, createdBy: `memu image build ${definition.name}: ${packages.length} Debian packages from ${definition.archive.suite}, unpacked` },
        { diffId: layers[1]!.diffId, createdBy: `memu image build ${definition.name}: the definition's users, groups and files` },
      ],
      labels: {
        'org.opencontainers.image.title': definition.name,
        'org.opencontainers.image.description': definition.description,
        'org.opencontainers.image.created': created,
        'org.memu.image.definition': definition.name,
        'org.memu.debian.suite': definition.archive.suite,
        'org.memu.debian.packages': recorded.map((p) => `${p.name}=${p.version}`).join(' '),
      },
    });
    const manifest = imageManifest(config, layers);
    log.info({ platform, manifest: manifest.digest, layers: layers.map((l) => l.size), stageSeconds }, 'platform built');
    return {
      manifest,
      config,
      layers,
      platform: {
        platform,
        manifest: manifest.digest,
        config: config.digest,
        layers: layers.map((l) => ({ digest: l.digest, size: l.size, diffId: l.diffId, tarSize: l.tarSize })),
        compressedBytes: layers.reduce((n, l) => n + l.size, 0),
        unpackedBytes: layers.reduce((n, l) => n + l.tarSize, 0),
        packages: recorded,
        packagesFrom: from,
        stageSeconds,
      } satisfies BuiltPlatform,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What a resolved package set was resolved from: when any of it changes, the archive is asked again. */
function resolutionKey(definition: ImageDefinition, arch: string) {
  return {
    archive: definition.archive,
    arch,
    packages: [...definition.packages].sort(),
    skip: definition.skipDependencies.map((s) => s.package).sort(),
  };
}

interface ResolvedRecord {
  key: ReturnType<typeof resolutionKey>;
  packages: RecordedPackage[];
}

/**
 * The package versions and their .debs: as an earlier build resolved them when nothing
 * that decides the set changed and every .deb is still cached (no network), else from
 * the archive, whose answer is recorded for the next build.
 */
async function packageSet(opts: BuildImageOptions, arch: string, work: string): Promise<{ packages: PackageControl[]; from: 'recorded' | 'archive' }> {
  const { definition, log } = opts;
  const paths = debianImagePaths(opts.cacheDir);
  const debDir = paths.debs(definition.archive.suite, arch);
  const recordPath = paths.resolved(definition.name, arch);
  const key = resolutionKey(definition, arch);
  const record = (await readJsonIfPresent(recordPath)) as ResolvedRecord | undefined;
  if (record && !opts.refreshPackages && JSON.stringify(record.key) === JSON.stringify(key)) {
    const debs = await Promise.all(record.packages.map((p) => cachedDeb(debDir, p)));
    if (debs.every(Boolean)) return { packages: await Promise.all(record.packages.map((p, i) => readControl(debs[i]!, p))), from: 'recorded' };
    log.info({ missing: record.packages.filter((_, i) => !debs[i]).map((p) => `${p.name}=${p.version}`) }, 'some .debs of the recorded package set are no longer cached; asking the archive');
  } else if (record && !opts.refreshPackages) {
    log.info({ recordPath }, "the definition's packages or archive changed since the package set was resolved; asking the archive");
  }

  const archive = await DebianArchive.open(definition.archive, arch, debDir, work);
  try {
    const resolution = await resolvePackages(
      archive,
      definition.packages,
      definition.skipDependencies.map((s) => s.package),
    );
    const unused = definition.skipDependencies.filter((s) => !resolution.skipped.some((x) => x.package === s.package));
    if (unused.length) log.warn({ skips: unused.map((s) => s.package) }, 'no package of the image depends on these skipped dependencies any more: remove them from the definition');
    log.debug({ skipped: resolution.skipped }, 'dependencies left out');
    await writeJsonDurably(recordPath, { key, packages: resolution.packages.map((p) => ({ name: p.name, version: p.version, arch: p.arch })) } satisfies ResolvedRecord);
    return { packages: resolution.packages, from: 'archive' };
  } finally {
    await archive.close();
  }
}

/** A packaged path owned by someone other than root must be declared (the layer makes it root's otherwise). */
async function requireDeclaredOwners(definition: ImageDefinition, packages: PackageControl[]): Promise<void> {
  const undeclared = undeclaredOwners(definition, await Promise.all(packages.map(async (p) => ({ package: p.name, paths: await nonRootPaths(p.debPath) }))));
  if (undeclared.length > 0) {
    throw new MemuError(
      `packages of image ${definition.name} ship paths owned by users other than root, which the definition does not declare: ${undeclared.join(', ')}`,
      ExitCode.badInput,
      "declare each in the definition's files with its owner and mode",
    );
  }
}

/** `PATH (package)` for each non-root path no file or directory of the definition declares. */
export function undeclaredOwners(definition: ImageDefinition, nonRoot: { package: string; paths: string[] }[]): string[] {
  const declared = new Set(definition.files.filter((f) => f.kind !== 'symlink').map((f) => f.path));
  return nonRoot.flatMap((p) => p.paths.filter((path) => !declared.has(path)).map((path) => `${path} (${p.package})`));
}

/**
 * The definition layer: /etc/passwd and /etc/group from its users and groups, the package
 * list, its files, and any parent directory the packages do not already have.
 */
export async function definitionEntries(definition: ImageDefinition, packages: readonly RecordedPackage[], packagesRoot: string): Promise<TarEntry[]> {
  const root = { uid: 0, gid: 0 };
  const list = [...packages]
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((p) => `${p.name} ${p.version} ${p.arch}\n`)
    .join('');
  const entries: TarEntry[] = [
    { type: 'file', path: 'etc/passwd', mode: 0o644, content: Buffer.from(passwdFile(definition)), ...root },
    { type: 'file', path: 'etc/group', mode: 0o644, content: Buffer.from(groupFile(definition)), ...root },
    { type: 'file', path: layerPath(PACKAGES_LIST_PATH), mode: 0o644, content: Buffer.from(list), ...root },
  ];
  for (const f of definition.files) {
    const path = layerPath(f.path);
    if (f.kind === 'symlink') entries.push({ type: 'symlink', path, target: f.target, ...root });
    else if (f.kind === 'directory') entries.push({ type: 'directory', path, mode: f.mode, ...ownerIds(definition, f.owner) });
    else entries.push({ type: 'file', path, mode: f.mode, content: Buffer.from(f.content), ...ownerIds(definition, f.owner) });
  }
  const present = new Set(entries.map((e) => e.path));
  for (const e of [...entries]) {
    for (let dir = posix.dirname(e.path); dir !== '.' && !present.has(dir); dir = posix.dirname(dir)) {
      const st = await lstat(join(packagesRoot, dir)).catch(() => undefined);
      if (st?.isSymbolicLink()) throw new MemuError(`image ${definition.name} declares /${e.path}, but /${dir} is a link in its packages`, ExitCode.badInput, 'declare the path under the directory the link points to');
      present.add(dir);
      if (!st) entries.push({ type: 'directory', path: dir, mode: 0o755, ...root });
    }
  }
  return entries;
}
