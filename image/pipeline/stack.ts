import { lstat, readdir, readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Platform } from '../../shared/contracts/image-lock.ts';
import { STACK_BASE_FILE, STACK_INSTALL_DIR, STACK_LOCK_FILE } from '../../shared/contracts/stack-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import type { RegistryMirrors } from '../oci/reference.ts';
import { preloadImages, type PreloadResult } from '../preload/preload.ts';
import { checkImagesLocked, readComposeImages, readImageLock } from '../stack/lock.ts';
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

async function composeFilesIn(stackDir: string): Promise<string[]> {
  const names = (await readdir(stackDir).catch(() => {
    throw new MemuError(`stack directory ${stackDir} cannot be read`, ExitCode.badInput, 'pass --stack DIR with stack.yml and images.lock.json');
  })).filter((n) => /\.ya?ml$/.test(n));
  if (!names.includes(STACK_BASE_FILE)) {
    throw new MemuError(`stack directory ${stackDir} has no ${STACK_BASE_FILE}`, ExitCode.badInput, `the base compose file must be named ${STACK_BASE_FILE}; overrides sit beside it`);
  }
  return names.sort().map((n) => join(stackDir, n));
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
  const files = await composeFilesIn(opts.stackDir);
  const lockPath = join(opts.stackDir, STACK_LOCK_FILE);
  const lock = await readImageLock(lockPath);
  const composeImages = await readComposeImages(files);
  // Refuses floating tags: every image must be pinned for this platform.
  checkImagesLocked(composeImages, lock, [opts.platform]);

  const seen = new Set<string>();
  const images = composeImages
    .filter((i) => !seen.has(i.reference) && seen.add(i.reference))
    .map((i) => {
      const entry = lock.images[i.reference]!;
      return { service: i.service, reference: i.reference, digest: entry.platforms[opts.platform]!, indexDigest: entry.index };
    });

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
