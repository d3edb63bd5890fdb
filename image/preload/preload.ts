import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Platform } from '../../shared/contracts/image-lock.ts';
import { fsyncDirectory, temporaryNameFor } from '../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { formatBytes, type Progress } from '../host/progress.ts';
import { BlobCache } from '../oci/blob-cache.ts';
import { loadCredentials } from '../oci/credentials.ts';
import { familiarName, fullName, isDigest, parseImageReference, type ImageReference, type RegistryMirrors } from '../oci/reference.ts';
import { RegistryClient, RegistryError } from '../oci/registry-client.ts';
import { fetchImage, type CachedImage } from '../oci/resolve.ts';
import { addDistributionMetadata, addReferences, diskUsageBytes, removeRuntimeState, unpackedLayerBytes } from './docker-data-root.ts';
import { spawnArchiveTar, stageImageArchive, type ArchiveImage } from './image-archive.ts';
import { startThrowawayDockerd, type ThrowawayDockerd } from './throwaway-dockerd.ts';

/** balena's sizing rule for a data partition holding preloaded images. */
export const PARTITION_SIZE_FACTOR = 1.4;

export interface PreloadImage {
  service: string;
  /** The reference as written in the compose file, e.g. `ghcr.io/immich-app/immich-server:v1.119.0`. */
  reference: string;
  /** The platform's manifest digest from the image lock. */
  digest: string;
  /** The index digest from the image lock; also recorded as `repo@index`, like `docker pull` does. */
  indexDigest?: string;
}

export interface FetchImagesOptions {
  images: PreloadImage[];
  platform: Platform;
  cacheDir: string;
  registryMirrors?: RegistryMirrors;
  log: Logger;
  progress?: Progress;
  /** For tests that count requests; built from the options when absent. */
  client?: RegistryClient;
}

export interface PreloadOptions extends FetchImagesOptions {
  /** Directory that becomes the device's Docker data-root (`/var/lib/memu/docker`). */
  dataRoot: string;
  dockerdPath?: string;
  /** Restart a daemon on the result and check every reference resolves (default true). */
  verify?: boolean;
}

export interface PreloadedImage {
  service: string;
  reference: string;
  digest: string;
  /** dockerd's image id (the config digest). */
  imageId: string;
  /** References the device's dockerd knows the image by (familiar form). */
  references: string[];
  compressedBytes: number;
}

export interface PreloadResult {
  platform: Platform;
  images: PreloadedImage[];
  /** Bytes fetched from registries in this run: 0 when everything was cached. */
  downloadedBytes: number;
  /** Compressed size of the distinct layers. */
  compressedLayerBytes: number;
  /** Unpacked size of the distinct layers, as dockerd recorded it. */
  uncompressedLayerBytes: number;
  /** Disk space the data-root occupies (allocated blocks). */
  dataRootBytes: number;
  /** uncompressedLayerBytes × 1.4 (balena's rule), for sizing the data partition. */
  estimatedPartitionBytes: number;
  timings: { fetchMs: number; loadMs: number; verifyMs: number };
}

interface PreparedImage {
  request: PreloadImage;
  services: string[];
  ref: ImageReference;
  image: CachedImage;
}

function describe(i: PreloadImage): string {
  return `service ${i.service}: image ${i.reference}`;
}

function fetchError(image: PreloadImage, platform: string, err: unknown, mirrors: RegistryMirrors): MemuError {
  const what = `${describe(image)} (${platform} ${image.digest})`;
  if (err instanceof RegistryError) {
    if (err.kind === 'unreachable') {
      return new MemuError(
        `${what}: not in the blob cache and ${err.message}`,
        ExitCode.environment,
        Object.keys(mirrors).length ? 'start the mirror given with --registry-mirror' : 'connect to the registry, or fill the cache first with `memu stack lock --prefetch`',
      );
    }
    if (err.kind === 'digest-mismatch') return new MemuError(`${what}: ${err.message}`, ExitCode.verifyFailed, 'the registry or a proxy served altered content');
    if (err.kind === 'not-found') return new MemuError(`${what}: ${err.message}`, ExitCode.badInput, 'the lock names a digest the registry does not have: run `memu stack lock` again');
    if (err.kind === 'unauthorized') return new MemuError(`${what}: ${err.message}`, ExitCode.environment, 'log in with `docker login`, or set MEMU_REGISTRY_AUTH');
  }
  return new MemuError(`${what}: ${(err as Error).message}`, ExitCode.failure);
}

/**
 * Brings every image's manifest, config and layers into the blob cache (verified by
 * digest), fetching only what is missing, and checks each is for `platform`.
 */
export async function fetchImagesToCache(opts: FetchImagesOptions): Promise<{ prepared: PreparedImage[]; cache: BlobCache; downloadedBytes: number }> {
  const mirrors = opts.registryMirrors ?? {};
  const cache = new BlobCache(opts.cacheDir);
  // Creating the client contacts nothing: with every blob cached, no request is sent.
  const client = opts.client ?? new RegistryClient({ mirrors, credentials: await loadCredentials(), log: opts.log });

  const byReference = new Map<string, Omit<PreparedImage, 'image'>>();
  for (const request of opts.images) {
    const seen = byReference.get(request.reference);
    if (seen) {
      if (seen.request.digest !== request.digest) {
        throw new MemuError(`${describe(request)} is listed twice with different digests (${seen.request.digest}, ${request.digest})`, ExitCode.badInput);
      }
      seen.services.push(request.service);
      continue;
    }
    if (!isDigest(request.digest)) throw new MemuError(`${describe(request)}: "${request.digest}" is not a sha256 digest`, ExitCode.badInput, 'take digests from the image lock');
    let ref: ImageReference;
    try {
      ref = parseImageReference(request.reference);
    } catch (err) {
      throw new MemuError(`${describe(request)}: ${(err as Error).message}`, ExitCode.badInput);
    }
    byReference.set(request.reference, { request, services: [request.service], ref });
  }

  // Manifests and configs first (small), so the layer stage knows its total.
  const prepared: PreparedImage[] = [];
  for (const p of byReference.values()) {
    let image: CachedImage;
    try {
      image = await fetchImage(client, cache, p.ref, p.request.digest, { platform: opts.platform });
    } catch (err) {
      throw fetchError(p.request, opts.platform, err, mirrors);
    }
    const actual = `${image.config.os}/${image.config.architecture}`;
    if (actual !== opts.platform) {
      throw new MemuError(`${describe(p.request)}: digest ${p.request.digest} is a ${actual} image, not ${opts.platform}`, ExitCode.badInput, 'take the digest for this platform from the image lock');
    }
    prepared.push({ ...p, image });
  }
  const missing = new Map<string, number>();
  for (const p of prepared) for (const l of p.image.layers) if (!(await cache.has(l.digest))) missing.set(l.digest, l.size);
  const missingBytes = [...missing.values()].reduce((a, b) => a + b, 0);
  if (missing.size) {
    opts.progress?.stage('download layers', missingBytes);
    let done = 0;
    for (const p of prepared) {
      try {
        await fetchImage(client, cache, p.ref, p.image.manifestDigest, {
          withLayers: true,
          onBytes: (n) => opts.progress?.bytes((done += n)),
        });
      } catch (err) {
        throw fetchError(p.request, opts.platform, err, mirrors);
      }
    }
    opts.progress?.done(`${missing.size} layers, ${formatBytes(missingBytes)}`);
  }
  opts.log.info({ images: prepared.length, downloadedLayers: missing.size, downloadedBytes: cache.downloadedBytes }, missing.size ? 'images fetched' : 'all images found in the blob cache');
  return { prepared, cache, downloadedBytes: cache.downloadedBytes };
}

function archiveEntries(prepared: PreparedImage[]): ArchiveImage[] {
  return prepared.map(({ ref, image }) => ({
    image,
    repoTag: ref.tag ? `${familiarName(ref)}:${ref.tag}` : undefined,
    fullReference: `${fullName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`,
  }));
}

async function loadArchive(daemon: ThrowawayDockerd, stagingDir: string, totalBytes: number, progress?: Progress): Promise<string[]> {
  const { child: tar, ended: tarEnded } = spawnArchiveTar(stagingDir);
  let sent = 0;
  progress?.stage('load images into dockerd', totalBytes);
  tar.stdout!.on('data', (chunk: Buffer) => progress?.bytes((sent += chunk.length)));
  const loaded: string[] = [];
  try {
    const out = await daemon.docker.loadImage(tar.stdout!, { quiet: true });
    await new Promise<void>((resolve, reject) => {
      daemon.docker.modem.followProgress(
        out,
        (err: Error | null) => (err ? reject(err) : resolve()),
        (event: { stream?: string; error?: string }) => {
          if (event.error) reject(new Error(event.error));
          const m = /Loaded image(?: ID)?: (\S+)/.exec(event.stream ?? '');
          if (m) loaded.push(m[1]!);
        },
      );
    });
  } catch (err) {
    tar.kill('SIGKILL'); // nobody reads its output any more
    throw err;
  }
  const tarOutcome = await tarEnded;
  if (tarOutcome.code !== 0) throw new Error(`tar of the image archive failed (${tarOutcome.signal ?? tarOutcome.code}): ${tarOutcome.stderr.trim()}`);
  progress?.done(`${loaded.length} images`);
  return loaded;
}

/**
 * Fills `dataRoot` — the future Docker data-root of the device (`/var/lib/memu/docker`)
 * — with the locked images for `platform`, so the device's dockerd finds them by their
 * original `repo:tag` and `repo@digest` without pulling.
 *
 * How: every blob comes from the digest-verified cache (fetched first if missing);
 * a throwaway dockerd on `dataRoot` `docker load`s one archive assembled from the
 * cache (no emulation: loading only unpacks); then, with the daemon stopped, the
 * `repo@digest` references and the layers' registry origins that `docker pull` would
 * have recorded are added. A second daemon start checks every reference resolves.
 */
export async function preloadImages(opts: PreloadOptions): Promise<PreloadResult> {
  await mkdir(opts.dataRoot, { recursive: true });
  // Images from an earlier build would ride along unnoticed and fill the device's disk.
  if ((await readdir(opts.dataRoot)).length > 0) {
    throw new MemuError(`data-root ${opts.dataRoot} is not empty`, ExitCode.badInput, 'preload into a new, empty directory');
  }
  const t0 = Date.now();
  const { prepared, cache, downloadedBytes } = await fetchImagesToCache(opts);
  const fetchMs = Date.now() - t0;

  const compressed = new Map<string, number>();
  for (const p of prepared) for (const l of p.image.layers) compressed.set(l.digest, l.size);
  const compressedLayerBytes = [...compressed.values()].reduce((a, b) => a + b, 0);

  const staging = await mkdtemp(join(tmpdir(), 'memu-preload-'));
  const t1 = Date.now();
  try {
    const entries = archiveEntries(prepared);
    await stageImageArchive(staging, cache, entries);
    const daemon = await startDaemon(opts);
    try {
      await loadArchive(daemon, staging, compressedLayerBytes, opts.progress);
    } catch (err) {
      throw new MemuError(`loading images into the throwaway dockerd failed: ${(err as Error).message}`, ExitCode.failure, 'a layer that does not match its diff id means a damaged blob cache: delete it and build again');
    } finally {
      await daemon.stop();
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }

  const images: PreloadedImage[] = [];
  const refs: { name: string; reference: string; imageId: string }[] = [];
  for (const p of prepared) {
    const name = familiarName(p.ref);
    const references: string[] = [];
    if (p.ref.tag) references.push(`${name}:${p.ref.tag}`);
    for (const d of new Set([p.image.manifestDigest, p.request.indexDigest, p.ref.digest])) {
      if (d) {
        references.push(`${name}@${d}`);
        refs.push({ name, reference: `${name}@${d}`, imageId: p.image.configDigest });
      }
    }
    images.push({
      service: p.services.join(','),
      reference: p.request.reference,
      digest: p.image.manifestDigest,
      imageId: p.image.configDigest,
      references,
      compressedBytes: p.image.layers.reduce((a, l) => a + l.size, 0),
    });
  }
  await addReferences(opts.dataRoot, refs);
  await addDistributionMetadata(
    opts.dataRoot,
    prepared.flatMap((p) => p.image.layers.map((l, i) => ({ blobDigest: l.digest, diffId: p.image.diffIds[i]!, sourceRepository: fullName(p.ref) }))),
  );
  const loadMs = Date.now() - t1;

  const t2 = Date.now();
  if (opts.verify !== false) await verifyDataRoot(opts, images);
  await removeRuntimeState(opts.dataRoot);
  const verifyMs = Date.now() - t2;

  const uncompressedLayerBytes = await unpackedLayerBytes(opts.dataRoot);
  const result: PreloadResult = {
    platform: opts.platform,
    images,
    downloadedBytes,
    compressedLayerBytes,
    uncompressedLayerBytes,
    dataRootBytes: await diskUsageBytes(opts.dataRoot),
    estimatedPartitionBytes: Math.ceil(uncompressedLayerBytes * PARTITION_SIZE_FACTOR),
    timings: { fetchMs, loadMs, verifyMs },
  };
  opts.log.info(
    {
      platform: opts.platform,
      images: images.length,
      downloadedBytes,
      compressedLayerBytes,
      uncompressedLayerBytes,
      dataRootBytes: result.dataRootBytes,
      estimatedPartitionBytes: result.estimatedPartitionBytes,
      ...result.timings,
    },
    'images preloaded',
  );
  return result;
}

async function startDaemon(opts: PreloadOptions): Promise<ThrowawayDockerd> {
  try {
    return await startThrowawayDockerd({ dataRoot: opts.dataRoot, log: opts.log, dockerdPath: opts.dockerdPath });
  } catch (err) {
    throw new MemuError(`cannot start a throwaway dockerd on ${opts.dataRoot}: ${(err as Error).message}`, ExitCode.environment, 'preloading needs root, dockerd (Debian docker.io) and a data-root on a filesystem that supports overlayfs (ext4, xfs)');
  }
}

/** Starts a daemon on the finished data-root and checks each image is found by each reference. */
async function verifyDataRoot(opts: PreloadOptions, images: PreloadedImage[]): Promise<void> {
  const daemon = await startDaemon(opts);
  try {
    for (const image of images) {
      for (const reference of image.references) {
        const info = await daemon.docker
          .getImage(reference)
          .inspect()
          .catch((err: Error) => {
            throw new MemuError(`preloaded data-root check failed: ${reference} (${describe({ ...image, digest: image.digest })}) is not found: ${err.message}`, ExitCode.failure);
          });
        if (info.Id !== image.imageId) {
          throw new MemuError(`preloaded data-root check failed: ${reference} resolves to ${info.Id}, expected ${image.imageId}`, ExitCode.failure);
        }
      }
    }
  } finally {
    await daemon.stop();
  }
}

export interface ExportArchivesOptions extends FetchImagesOptions {
  /** Where to write the archive (`docker save` format: OCI layout + manifest.json). */
  outFile: string;
}

export interface ExportArchivesResult {
  path: string;
  bytes: number;
  downloadedBytes: number;
  images: { service: string; reference: string; digest: string; imageId: string }[];
}

/**
 * The alternative to a preloaded data-root: one `docker save`-format archive of the
 * locked images that the device would `docker load` on first boot. Reproducible
 * (sorted, fixed owners and times) and written atomically.
 */
export async function exportImageArchives(opts: ExportArchivesOptions): Promise<ExportArchivesResult> {
  const { prepared, cache, downloadedBytes } = await fetchImagesToCache(opts);
  const staging = await mkdtemp(join(tmpdir(), 'memu-archive-'));
  await mkdir(dirname(opts.outFile), { recursive: true });
  const tmp = temporaryNameFor(opts.outFile);
  try {
    await stageImageArchive(staging, cache, archiveEntries(prepared));
    const tar = spawnArchiveTar(staging);
    await pipeline(tar.child.stdout!, createWriteStream(tmp, { mode: 0o644 }));
    const ended = await tar.ended;
    if (ended.code !== 0) throw new Error(`tar failed (${ended.signal ?? ended.code}): ${ended.stderr.trim()}`);
    const fd = await open(tmp, 'r');
    await fd.sync().finally(() => fd.close());
    await rename(tmp, opts.outFile);
    await fsyncDirectory(dirname(opts.outFile));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  const bytes = (await stat(opts.outFile)).size;
  opts.log.info({ path: opts.outFile, bytes, images: prepared.length }, 'image archive written');
  return {
    path: opts.outFile,
    bytes,
    downloadedBytes,
    images: prepared.map((p) => ({ service: p.services.join(','), reference: p.request.reference, digest: p.image.manifestDigest, imageId: p.image.configDigest })),
  };
}
