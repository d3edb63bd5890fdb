import { join } from 'node:path';
import type { RegisterCommand } from '../command.ts';
import { ExitCode } from '../../host/errors.ts';
import { memuCacheDir } from '../../host/cache-dir.ts';
import { formatBytes } from '../../host/progress.ts';
import { buildDebianImage } from '../../debian-images/build-image.ts';
import { definitionNames, loadDefinition } from '../../debian-images/definitions/index.ts';
import { defaultSourceDateEpoch } from '../../pipeline/pipeline.ts';
import { parsePlatforms } from '../../stack/lock.ts';
import { CACHE_DIR_HELP } from '../options.ts';

interface BuildOptions {
  platform: string;
  push?: string;
  out?: string;
  cacheDir?: string;
  refreshPackages?: boolean;
}

export const registerImage: RegisterCommand = (program, run) => {
  const image = program.command('image').description('container images built from Debian packages, for the stack');
  image
    .command('build')
    .description('build an OCI image from Debian packages for each platform (no Docker, nothing of the target architecture runs)')
    .argument('<definition>', `image definition: ${definitionNames().join(', ')}`)
    .option('--platform <list>', 'comma-separated platforms', 'linux/amd64,linux/arm64')
    .option('--push <reference>', 'push the image (an index with one manifest per platform) to REGISTRY/REPO:TAG')
    .option('--out <dir>', 'OCI image layout to write (default: out/images/<definition>)')
    .option('--cache-dir <dir>', `${CACHE_DIR_HELP}; .debs and resolved package sets go to its debian-images/`)
    .option('--refresh-packages', 'ask the archive for the package set again even when it was resolved before')
    .addHelpText(
      'after',
      '\nThe packages come from the Debian suite the device runs (trixie) and are unpacked, not\ninstalled. Reproducible: the same package versions with the same SOURCE_DATE_EPOCH (default\nfrom package.json) give the same digests. The package set is resolved once per definition\nand platform and its .debs are cached, so a rebuild needs no network.\nPin the pushed image with `memu stack lock` like any other.',
    )
    .action((name: string, opts: BuildOptions) =>
      run(async ({ log, progress }) => {
        const definition = loadDefinition(name);
        const built = await buildDebianImage({
          definition,
          platforms: parsePlatforms(opts.platform),
          cacheDir: memuCacheDir(opts.cacheDir),
          outDir: opts.out ?? join('out', 'images', definition.name),
          sourceDateEpoch: await defaultSourceDateEpoch(),
          refreshPackages: opts.refreshPackages,
          push: opts.push,
          log,
          progress,
        });
        const sizes = built.platforms.map((p) => `${p.platform} ${formatBytes(p.compressedBytes)} (${formatBytes(p.unpackedBytes)} unpacked, ${p.packages.length} packages)`);
        return {
          exitCode: ExitCode.ok,
          result: { ...built },
          summary: [
            `built ${definition.name}: index ${built.index}`,
            ...sizes.map((s) => `  ${s}`),
            `  OCI image layout in ${built.layout}`,
            ...(built.pushed ? [`  pushed to ${built.pushed.reference} (${formatBytes(built.pushed.uploadedBytes)} uploaded)`] : []),
          ].join('\n'),
        };
      }),
    );
};
