import { loadProfile, profileNames, ProfileError } from '../../../hardware/index.ts';
import { buildImage, defaultBuildConfig } from '../../pipeline/pipeline.ts';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { CACHE_DIR_HELP, parseMirrorOptions } from '../options.ts';

export const registerBuild: RegisterCommand = (program, run) => {
  program
    .command('build')
    .description('build a flashable, signed Memu OS disk image for a hardware profile')
    .argument('[profile]', `hardware profile: ${profileNames().join(', ')}`, 'qemu-amd64')
    .option('--out <dir>', 'output directory (default: out/<profile>)')
    .option('--cache-dir <dir>', CACHE_DIR_HELP)
    .option('--key <path>', 'ed25519 signing key (.key from `memu keygen`; default: $MEMU_SIGNING_KEY, else a local development key)')
    .option('--rauc-keyring <pem>', 'release CA certificate(s) devices check OS update bundles against, put into the image as /etc/rauc/keyring.pem (ca.cert.pem from `memu keygen --rauc DIR`; default: a development CA under the cache dir)')
    .option('--version <version>', 'release version recorded in the image (default: package.json version)')
    .option('--refresh-rootfs', 'ignore the cached root filesystem and build it afresh')
    .option('--stack <dir>', 'container stack to install and preload: stack.yml (+ overrides) and images.lock.json, e.g. compose')
    .option('--registry-mirror <from=to>', 'fetch images of registry FROM through TO while preloading (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--overlay <dir>', 'extra directory of files laid onto the root filesystem last (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--packages-from <manifest>', "install exactly the Debian package versions an earlier build's manifest.json records (from the deb cache, else the archive)")
    .addHelpText(
      'after',
      '\nOutputs in the output directory: <name>.img (raw, sparse), <name>.img.zst, <name>.bmap,\nmanifest.json and manifest.json.sig. Check them with `memu verify DIR`.\nOS updates: the image trusts RAUC bundles signed under the CA of --rauc-keyring;\nthe result names it (subject, SHA-256 fingerprint).\nReproducible: the same package versions and inputs, with the same SOURCE_DATE_EPOCH\n(default from package.json), give the same bytes; --packages-from rebuilds an earlier\nrelease with its package versions after the archive moved on.',
    )
    .action((profileName: string, opts: { out?: string; cacheDir?: string; key?: string; raucKeyring?: string; version?: string; refreshRootfs?: boolean; overlay: string[]; stack?: string; registryMirror: string[]; packagesFrom?: string }) =>
      run(async ({ log, progress }) => {
        let profile;
        try {
          profile = loadProfile(profileName);
        } catch (err) {
          if (err instanceof ProfileError) throw new MemuError(err.message, ExitCode.badInput, `choose one of: ${profileNames().join(', ')}`);
          throw err;
        }
        const config = await defaultBuildConfig(profile, {
          outDir: opts.out,
          cacheDir: opts.cacheDir,
          signingKeyPath: opts.key,
          raucKeyringPath: opts.raucKeyring,
          version: opts.version,
          refreshRootfs: opts.refreshRootfs,
          extraOverlays: opts.overlay,
          stackDir: opts.stack,
          registryMirrors: parseMirrorOptions(opts.registryMirror),
          packagesFrom: opts.packagesFrom,
        });
        const result = await buildImage(config, log, progress);
        const f = result.artifacts.files;
        return {
          exitCode: ExitCode.ok,
          result: {
            image: f.image,
            zst: f.zst,
            bmap: f.bmap,
            manifest: f.manifest,
            signature: f.signature,
            rootfsCacheHit: result.rootfsCacheHit,
            initramfsCacheHit: result.initramfsCacheHit,
            packagesPinnedFrom: result.artifacts.manifest.packagesPinnedFrom,
            stageSeconds: result.stageSeconds,
            raucKeyring: result.raucKeyring,
          },
          summary: [
            `built ${f.image}`,
            `  also ${f.zst}, ${f.bmap}`,
            `  signed manifest ${f.manifest} (check with: memu verify ${config.outDir})`,
            ...result.raucKeyring.identity.certificates.map(
              (c) => `  trusts OS updates signed under ${result.raucKeyring.source === 'development' ? 'the DEVELOPMENT CA ' : ''}"${c.subject}" (SHA-256 ${c.sha256Fingerprint})`,
            ),
          ].join('\n'),
        };
      }),
    );
};
