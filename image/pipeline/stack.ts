import { lstat, readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Platform } from '../../shared/contracts/image-lock.ts';
import { STACK_INSTALL_DIR, STACK_LOCK_FILE } from '../../shared/contracts/stack-files.ts';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import type { RegistryMirrors } from '../oci/reference.ts';
import { preloadImages, type PreloadResult } from '../preload/preload.ts';
import { checkStackAsDevice, findStackFiles } from '../stack/device-stack-check.ts';
import { checkImagesLocked, readImageLock } from '../stack/lock.ts';
import { replaceFile } from './staging.ts';

/**
 * The container stack of an image: its compose files, config templates and image lock go
 * into the root filesystem (`/usr/lib/memu/stack`), and every locked image is preloaded,
 * for the target platform, into the Docker data-root that becomes the data partition's
 * `docker/` — so the first boot needs no network.
 */
export interface StackResult {
  /** Directory to copy into the data partition (holds `docker/`). */
  dataDir: string;
  preload: PreloadResult;
  images: { service: string; reference: string; digest: string }[];
}

/**
 * What the build refuses about a stack before preloading anything: compose files the
 * device would refuse (checked with the device's own loader), and images the lock does
 * not pin for this platform. Returns each image with its digest.
 */
export async function checkStackForBuild(stackDir: string, platform: Platform): Promise<{ service: string; reference: string; digest: string; indexDigest?: string }[]> {
  const files = await findStackFiles(stackDir);
  const lock = await readImageLock(join(stackDir, STACK_LOCK_FILE));
  const composeImages = await checkStackAsDevice(files);
  checkImagesLocked(composeImages, lock, [platform]);
  const seen = new Set<string>();
  return composeImages
    .filter((i) => !seen.has(i.reference) && seen.add(i.reference))
    .map((i) => {
      const entry = lock.images[i.reference]!;
      return { service: i.service, reference: i.reference, digest: entry.platforms[platform]!, indexDigest: entry.index };
    });
}

export async function prepareStack(opts: {
  stackDir: string;
  tree: string;
  workDir: string;
  platform: Platform;
  blobCacheDir: string;
  registryMirrors: RegistryMirrors;
  log: Logger;
  progress: Progress;
}): Promise<StackResult> {
  const images = await checkStackForBuild(opts.stackDir, opts.platform);

  const dataDir = join(opts.workDir, 'data');
  const dataRoot = join(dataDir, 'docker');
  await mkdir(dataRoot, { recursive: true });
  const preload = await preloadImages({
    images,
    platform: opts.platform,
    dataRoot,
    cacheDir: opts.blobCacheDir,
    registryMirrors: opts.registryMirrors,
    log: opts.log,
    progress: opts.progress,
  });
  await copyStackFiles(opts.stackDir, opts.tree);
  return { dataDir, preload, images: images.map(({ service, reference, digest }) => ({ service, reference, digest })) };
}

/** Copies the stack directory (compose files, templates, lock) into the root filesystem. */
async function copyStackFiles(stackDir: string, tree: string): Promise<void> {
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(stackDir, rel))).sort()) {
      const relPath = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(stackDir, relPath));
      if (st.isDirectory()) await walk(relPath);
      else if (st.isFile()) await replaceFile(tree, `${STACK_INSTALL_DIR.slice(1)}/${relPath}`, await readFile(join(stackDir, relPath)), st.mode & 0o111 ? 0o755 : 0o644);
    }
  };
  await walk('');
}
