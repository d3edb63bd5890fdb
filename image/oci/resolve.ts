import type { BlobCache } from './blob-cache.ts';
import {
  assertLoadableLayers,
  listPlatforms,
  parseImageConfig,
  parseManifest,
  platformParts,
  selectPlatform,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
} from './manifest.ts';
import { RegistryError, type RegistryClient, type RepositoryRef } from './registry-client.ts';
import type { ImageReference } from './reference.ts';

/** What a tag points at: the index digest (if multi-platform) and one manifest digest per platform. */
export interface ResolvedImage {
  index?: string;
  platforms: Record<string, string>;
}

/** An image has no manifest for a wanted platform. */
export class PlatformMissingError extends Error {
  constructor(
    message: string,
    readonly platform: string,
  ) {
    super(message);
    this.name = 'PlatformMissingError';
  }
}

/** One platform's image, every blob of it verified and in the cache. */
export interface CachedImage {
  manifestDigest: string;
  manifestMediaType: string;
  manifest: ImageManifest;
  configDigest: string;
  config: ImageConfig;
  /** Compressed layer descriptors, in order. */
  layers: Descriptor[];
  /** Uncompressed layer digests (the config's rootfs.diff_ids), aligned with `layers`. */
  diffIds: string[];
}

/**
 * Resolves a reference to per-platform manifest digests, reading each platform's
 * manifest and config so the lock only ever pins content that exists, matches its
 * digest and really is for that platform. Manifests and configs land in the cache.
 */
export async function resolveImage(
  client: RegistryClient,
  cache: BlobCache,
  ref: ImageReference,
  platforms: readonly string[],
): Promise<ResolvedImage> {
  const top = await client.getManifest(ref, ref.digest ?? ref.tag ?? 'latest');
  await cache.putBytes(top.digest, top.bytes);
  const result: ResolvedImage = { platforms: {} };
  if (top.parsed.kind === 'index') {
    result.index = top.digest;
    for (const platform of platforms) {
      const desc = selectPlatform(top.parsed.index, platform);
      if (!desc) {
        const offered = listPlatforms(top.parsed.index);
        throw new PlatformMissingError(`has no ${platform} image (it offers ${offered.join(', ') || 'no platforms'})`, platform);
      }
      const image = await fetchImage(client, cache, ref, desc.digest);
      assertPlatform(image, platform);
      result.platforms[platform] = image.manifestDigest;
    }
    return result;
  }
  // A single-platform manifest: its config says which platform it is.
  const image = await fetchImage(client, cache, ref, top.digest);
  const actual = `${image.config.os}/${image.config.architecture}`;
  for (const platform of platforms) {
    if (platform !== actual) throw new PlatformMissingError(`has no ${platform} image (it is a single-platform ${actual} image)`, platform);
    result.platforms[platform] = top.digest;
  }
  return result;
}

function assertPlatform(image: CachedImage, platform: string): void {
  const want = platformParts(platform);
  if (image.config.os !== want.os || image.config.architecture !== want.architecture) {
    throw new RegistryError(
      `the index lists manifest ${image.manifestDigest} as ${platform} but its config says ${image.config.os}/${image.config.architecture}`,
      'protocol',
    );
  }
}

async function manifestFromCacheOrRegistry(client: RegistryClient, cache: BlobCache, ref: RepositoryRef, digest: string) {
  if (await cache.has(digest)) {
    const bytes = await cache.read(digest);
    return { digest, bytes, parsed: parseManifest(bytes, undefined) };
  }
  const fetched = await client.getManifest(ref, digest);
  await cache.putBytes(fetched.digest, fetched.bytes);
  return fetched;
}

/**
 * Makes sure one platform's manifest and config are cached and returns them parsed.
 * With `withLayers`, downloads (or finds) every layer too. `manifestDigest` may also
 * name an index, when `platform` says which manifest to take from it.
 */
export async function fetchImage(
  client: RegistryClient,
  cache: BlobCache,
  ref: RepositoryRef,
  manifestDigest: string,
  opts: { platform?: string; withLayers?: boolean; onBytes?: (n: number) => void; layerConcurrency?: number } = {},
): Promise<CachedImage> {
  let m = await manifestFromCacheOrRegistry(client, cache, ref, manifestDigest);
  if (m.parsed.kind === 'index') {
    if (!opts.platform) throw new RegistryError(`${manifestDigest} is an index, expected a platform's manifest`, 'protocol');
    const desc = selectPlatform(m.parsed.index, opts.platform);
    if (!desc) throw new PlatformMissingError(`has no ${opts.platform} image`, opts.platform);
    m = await manifestFromCacheOrRegistry(client, cache, ref, desc.digest);
    if (m.parsed.kind !== 'manifest') throw new RegistryError(`${desc.digest} is a nested index, which is not supported`, 'protocol');
  }
  const manifest = m.parsed.manifest;
  assertLoadableLayers(manifest);
  await cache.fetch(client, ref, manifest.config);
  const config = parseImageConfig(await cache.read(manifest.config.digest));
  if (config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new RegistryError(
      `manifest ${m.digest} has ${manifest.layers.length} layers but its config lists ${config.rootfs.diff_ids.length}`,
      'protocol',
    );
  }
  if (opts.withLayers) {
    const queue = [...new Map(manifest.layers.map((l) => [l.digest, l])).values()];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) await cache.fetch(client, ref, next, opts.onBytes);
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.layerConcurrency ?? 3) }, worker));
  }
  return {
    manifestDigest: m.digest,
    manifestMediaType: m.parsed.mediaType,
    manifest,
    configDigest: manifest.config.digest,
    config,
    layers: manifest.layers,
    diffIds: config.rootfs.diff_ids,
  };
}
