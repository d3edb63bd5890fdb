import { readFile } from 'node:fs/promises';
import { IMAGE_LOCK_FORMAT, imageLockSchema, PLATFORMS, type ImageLock, type LockedImage, type Platform } from '../../shared/contracts/image-lock.ts';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import { BlobCache } from '../oci/blob-cache.ts';
import { loadCredentials } from '../oci/credentials.ts';
import { isFloating, parseImageReference, type RegistryMirrors } from '../oci/reference.ts';
import { RegistryClient, RegistryError } from '../oci/registry-client.ts';
import { fetchImage, PlatformMissingError, resolveImage } from '../oci/resolve.ts';
import { describeInvalid, isNotFound } from '../../shared/errors.ts';
import { checkStackAsDevice, type ComposeImage, type StackFiles } from './device-stack-check.ts';

export function parsePlatforms(list: string): Platform[] {
  const out: Platform[] = [];
  for (const p of list.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(PLATFORMS as readonly string[]).includes(p)) {
      throw new MemuError(`unsupported platform "${p}"`, ExitCode.badInput, `use one or more of ${PLATFORMS.join(', ')}`);
    }
    if (!out.includes(p as Platform)) out.push(p as Platform);
  }
  if (out.length === 0) throw new MemuError('no platform given', ExitCode.badInput, `use one or more of ${PLATFORMS.join(', ')}`);
  return out;
}

function describe(image: ComposeImage): string {
  return `service ${image.service}: image ${image.reference}`;
}

/** Turns a resolution failure into an error naming the service and image, with a fix. */
function lockError(image: ComposeImage, err: unknown, mirrors: RegistryMirrors): MemuError {
  const what = describe(image);
  if (err instanceof PlatformMissingError) {
    return new MemuError(`${what} ${err.message}`, ExitCode.badInput, `pick a tag that is published for ${err.platform}, or drop that platform with --platform`);
  }
  if (err instanceof RegistryError) {
    switch (err.kind) {
      case 'unreachable':
        return new MemuError(
          `${what}: ${err.message}`,
          ExitCode.environment,
          Object.keys(mirrors).length ? 'check that the mirror given with --registry-mirror is running' : 'check the network, or point at a reachable mirror with --registry-mirror FROM=TO',
        );
      case 'not-found':
        return new MemuError(`${what}: ${err.message}`, ExitCode.badInput, 'check the repository and tag spelling, and that the image was pushed');
      case 'unauthorized':
        return new MemuError(`${what}: ${err.message}`, ExitCode.environment, 'log in with `docker login`, or set MEMU_REGISTRY_AUTH');
      case 'digest-mismatch':
        return new MemuError(`${what}: ${err.message}`, ExitCode.verifyFailed, 'the registry or a proxy served altered content; do not use this registry until it is fixed');
      default:
        return new MemuError(`${what}: ${err.message}`, ExitCode.failure);
    }
  }
  return new MemuError(`${what}: ${(err as Error).message}`, ExitCode.badInput);
}

export interface LockStackOptions {
  images: ComposeImage[];
  platforms: Platform[];
  cacheDir: string;
  registryMirrors?: RegistryMirrors;
  log: Logger;
  progress?: Progress;
  /** Also download every layer into the cache, so a later build needs no registry. */
  prefetch?: boolean;
  /** Injected for tests that count requests; built from the options when absent. */
  client?: RegistryClient;
}

/** Resolves every compose image to per-platform digests and returns the lock (not written). */
export async function resolveStackLock(opts: LockStackOptions): Promise<ImageLock> {
  const mirrors = opts.registryMirrors ?? {};
  const client = opts.client ?? new RegistryClient({ mirrors, credentials: await loadCredentials(), log: opts.log });
  const cache = new BlobCache(opts.cacheDir);
  const images: Record<string, LockedImage> = {};
  const unique = [...new Map(opts.images.map((i) => [i.reference, i])).values()];
  opts.progress?.stage('resolve images');
  let done = 0;
  for (const image of unique) {
    let ref;
    try {
      ref = parseImageReference(image.reference);
    } catch (err) {
      throw new MemuError(`${describe(image)}: ${(err as Error).message}`, ExitCode.badInput);
    }
    try {
      const resolved = await resolveImage(client, cache, ref, opts.platforms);
      if (opts.prefetch) {
        for (const platform of opts.platforms) {
          await fetchImage(client, cache, ref, resolved.platforms[platform]!, { withLayers: true, onBytes: (n) => opts.progress?.bytes((done += n)) });
        }
      }
      const entry: LockedImage = { platforms: resolved.platforms as LockedImage['platforms'] };
      if (resolved.index) entry.index = resolved.index;
      images[image.reference] = entry;
      opts.log.info({ service: image.service, image: image.reference, ...entry }, 'image resolved');
    } catch (err) {
      throw lockError(image, err, mirrors);
    }
  }
  opts.progress?.done(`${unique.length} images`);
  const sorted = Object.fromEntries(Object.entries(images).sort(([a], [b]) => a.localeCompare(b)));
  return imageLockSchema.parse({ format: IMAGE_LOCK_FORMAT, images: sorted });
}

export async function writeImageLock(path: string, lock: ImageLock): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(imageLockSchema.parse(lock), null, 2)}\n`);
}

export async function readImageLock(path: string): Promise<ImageLock> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) throw new MemuError(`image lock ${path} does not exist`, ExitCode.badInput, 'run `memu stack lock`');
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MemuError(`image lock ${path} is not valid JSON`, ExitCode.badInput, 'run `memu stack lock` to rewrite it');
  }
  const r = imageLockSchema.safeParse(json);
  if (!r.success) throw new MemuError(describeInvalid(`image lock ${path}`, r.error.issues), ExitCode.badInput, 'run `memu stack lock` to rewrite it');
  return r.data;
}

/**
 * Refuses to build with an image the lock does not pin: a floating tag (or a digest
 * reference) that is not in the lock, or one without a digest for a wanted platform.
 */
export function checkImagesLocked(composeImages: { service: string; reference: string }[], lock: ImageLock, platforms: readonly Platform[] = []): void {
  const problems: string[] = [];
  for (const { service, reference } of composeImages) {
    const entry = lock.images[reference];
    if (!entry) {
      let floating = true;
      try {
        floating = isFloating(parseImageReference(reference));
      } catch {
        /* reported as unlocked either way */
      }
      problems.push(`service ${service}: image ${reference} is ${floating ? 'a floating tag ' : ''}not in the image lock`);
      continue;
    }
    for (const p of platforms) {
      if (!entry.platforms[p]) problems.push(`service ${service}: image ${reference} has no ${p} digest in the image lock`);
    }
  }
  if (problems.length) {
    throw new MemuError(
      problems.length === 1 ? problems[0]! : `${problems.length} images are not locked:\n  ${problems.join('\n  ')}`,
      ExitCode.badInput,
      'run `memu stack lock` (with every --platform you build for) and commit compose/images.lock.json',
    );
  }
}

export interface StackLockCommandOptions extends Omit<LockStackOptions, 'images'> {
  stackFiles: StackFiles;
  lockPath: string;
}

/** `memu stack lock`: compose files in (checked as the device will load them), lock file out (atomically). */
export async function lockStack(opts: StackLockCommandOptions): Promise<{ lock: ImageLock; images: ComposeImage[]; removed: string[] }> {
  const images = await checkStackAsDevice(opts.stackFiles);
  const lock = await resolveStackLock({ ...opts, images });
  let removed: string[] = [];
  const previous = await readImageLock(opts.lockPath).catch(() => undefined);
  if (previous) removed = Object.keys(previous.images).filter((k) => !(k in lock.images));
  await writeImageLock(opts.lockPath, lock);
  return { lock, images, removed };
}
