import { resolve } from 'node:path';
import type { RegisterCommand } from '../main.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { defaultBlobCacheDir } from '../../oci/blob-cache.ts';
import { parseRegistryMirror, type RegistryMirrors } from '../../oci/reference.ts';
import { checkImagesLocked, lockStack, parsePlatforms, readComposeImages, readImageLock } from '../../stack/lock.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function parseMirrorOptions(specs: string[] = []): RegistryMirrors {
  const mirrors: RegistryMirrors = {};
  for (const spec of specs) {
    try {
      const [from, to] = parseRegistryMirror(spec);
      mirrors[from] = to;
    } catch (err) {
      throw new MemuError((err as Error).message, ExitCode.badInput, 'e.g. --registry-mirror docker.io=127.0.0.1:5000');
    }
  }
  return mirrors;
}

interface LockOptions {
  compose?: string[];
  lock: string;
  platform: string;
  registryMirror?: string[];
  cacheDir?: string;
  prefetch?: boolean;
  check?: boolean;
}

export const registerStack: RegisterCommand = (program, run) => {
  const stack = program.command('stack').description('the container stack: compose files and the image lock');
  stack
    .command('lock')
    .description('resolve every compose image to per-platform digests and write the image lock')
    .option('--compose <file>', 'compose file (repeatable; later files override earlier ones)', collect)
    .option('--lock <file>', 'image lock to write', 'compose/images.lock.json')
    .option('--platform <list>', 'comma-separated platforms', 'linux/amd64,linux/arm64')
    .option('--registry-mirror <from=to>', 'fetch registry FROM through TO, e.g. docker.io=127.0.0.1:5000 (repeatable; the lock keeps the original names)', collect)
    .option('--cache-dir <dir>', 'blob cache (default ${XDG_CACHE_HOME:-~/.cache}/memu/blobs)')
    .option('--prefetch', 'also download every layer into the blob cache, so the build needs no registry')
    .option('--check', 'do not contact registries: fail if the lock does not cover every compose image')
    .action((opts: LockOptions) =>
      run(async ({ log, progress }) => {
        const composeFiles = (opts.compose?.length ? opts.compose : ['compose/stack.yml']).map((f) => resolve(f));
        const lockPath = resolve(opts.lock);
        const platforms = parsePlatforms(opts.platform);
        if (opts.check) {
          const images = await readComposeImages(composeFiles);
          checkImagesLocked(images, await readImageLock(lockPath), platforms);
          log.info({ lockPath, images: images.length }, 'every compose image is locked');
          process.stdout.write(`${JSON.stringify({ lockPath, locked: images.length })}\n`);
          return ExitCode.ok;
        }
        const { lock, removed } = await lockStack({
          composeFiles,
          lockPath,
          platforms,
          registryMirrors: parseMirrorOptions(opts.registryMirror),
          cacheDir: opts.cacheDir ? resolve(opts.cacheDir) : defaultBlobCacheDir(),
          prefetch: opts.prefetch,
          log,
          progress,
        });
        if (removed.length) log.info({ removed }, 'images no longer in the compose files were dropped from the lock');
        log.info({ lockPath, images: Object.keys(lock.images).length, platforms }, 'image lock written');
        process.stdout.write(`${JSON.stringify({ lockPath, images: Object.keys(lock.images).length, platforms })}\n`);
        return ExitCode.ok;
      }),
    );
};
