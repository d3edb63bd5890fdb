import { resolve } from 'node:path';
import type { RegisterCommand } from '../command.ts';
import { ExitCode } from '../../host/errors.ts';
import { cachePaths, memuCacheDir } from '../../host/cache-dir.ts';
import { checkStackAsDevice, findStackFiles, stackFilesFromList } from '../../stack/device-stack-check.ts';
import { checkImagesLocked, lockStack, parsePlatforms, readImageLock } from '../../stack/lock.ts';
import { CACHE_DIR_HELP, collect, parseMirrorOptions } from '../options.ts';

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
    .option('--compose <file>', 'compose file (repeatable): the first is the base, each further one an override a device may apply; default: compose/stack.yml and the overrides beside it', collect)
    .option('--lock <file>', 'image lock to write', 'compose/images.lock.json')
    .option('--platform <list>', 'comma-separated platforms', 'linux/amd64,linux/arm64')
    .option('--registry-mirror <from=to>', 'fetch registry FROM through TO, e.g. docker.io=127.0.0.1:5000 (repeatable; the lock keeps the original names)', collect)
    .option('--cache-dir <dir>', `${CACHE_DIR_HELP}; blobs go to its blobs/, where \`memu build\` reads them`)
    .option('--prefetch', 'also download every layer into the blob cache, so the build needs no registry')
    .option('--check', 'do not contact registries: check the compose files as the device will load them, and that the lock covers every image')
    .action((opts: LockOptions) =>
      run(async ({ log, progress }) => {
        const stackFiles = opts.compose?.length ? stackFilesFromList(opts.compose) : await findStackFiles(resolve('compose'));
        const lockPath = resolve(opts.lock);
        const platforms = parsePlatforms(opts.platform);
        if (opts.check) {
          const images = await checkStackAsDevice(stackFiles);
          checkImagesLocked(images, await readImageLock(lockPath), platforms);
          return { exitCode: ExitCode.ok, result: { lockPath, locked: images.length }, summary: `every compose image (${images.length}) is locked in ${lockPath}` };
        }
        const { lock, removed } = await lockStack({
          stackFiles,
          lockPath,
          platforms,
          registryMirrors: parseMirrorOptions(opts.registryMirror),
          cacheDir: cachePaths(memuCacheDir(opts.cacheDir)).blobs,
          prefetch: opts.prefetch,
          log,
          progress,
        });
        if (removed.length) log.info({ removed }, 'images no longer in the compose files were dropped from the lock');
        const images = Object.keys(lock.images).length;
        return { exitCode: ExitCode.ok, result: { lockPath, images, platforms }, summary: `locked ${images} images for ${platforms.join(', ')} in ${lockPath}` };
      }),
    );
};
