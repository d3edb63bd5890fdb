import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadPublicKey } from '../../../shared/contracts/signature.ts';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { makeRelease } from '../../release/make-release.ts';
import { loadSigningKey } from '../../release/signing-keys.ts';

interface ReleaseFlags {
  channelDir: string;
  channel: string;
  key?: string;
  buildKey?: string;
  raucCert: string;
  raucKey: string;
  raucKeyring: string;
  minVersion?: string;
  expiresInDays: string;
  bundleBaseUrl?: string;
}

export const registerRelease: RegisterCommand = (program, run) => {
  program
    .command('release')
    .description('turn a build output into a signed RAUC update bundle and release manifest, published into a channel directory')
    .argument('<build-dir>', 'a `memu build` output directory (checked like `memu verify`)')
    .requiredOption('--channel-dir <dir>', 'the channel: a directory of static files to serve as it is (CDN, tailnet web server)')
    .option('--channel <name>', 'the channel name devices follow', 'stable')
    .option('--key <path>', 'ed25519 release key that signs the manifest (.key from `memu keygen`; default: $MEMU_SIGNING_KEY)')
    .option('--build-key <path>', "public key the build's manifest is signed with (.pub; default: the release key's own)")
    .requiredOption('--rauc-cert <pem>', 'X.509 code-signing certificate for the bundle')
    .requiredOption('--rauc-key <pem>', 'its private key')
    .requiredOption('--rauc-keyring <pem>', "the CA certificate devices trust (the image's /etc/rauc/keyring.pem); the new bundle is checked against it")
    .option('--min-version <semver>', 'the oldest running version this release may be installed over (default: any)')
    .option('--expires-in-days <n>', 'how long devices accept the manifest (a channel must publish a newer release before then)', '30')
    .option('--bundle-base-url <url>', "absolute http(s) address of the channel, when bundles are served apart from the manifests (default: bundle beside its manifest)")
    .action((buildDir: string, opts: ReleaseFlags) =>
      run(async ({ log }) => {
        const keyPath = opts.key ?? process.env.MEMU_SIGNING_KEY;
        if (!keyPath) throw new MemuError('a release needs the release key', ExitCode.badInput, 'pass --key PATH.key (from `memu keygen`) or set MEMU_SIGNING_KEY');
        const signingKey = await loadSigningKey(keyPath);
        const buildKey = opts.buildKey ? await readPublicKey(opts.buildKey) : signingKey.publicKey;
        const days = Number(opts.expiresInDays);
        if (!Number.isInteger(days) || days < 1 || days > 365) throw new MemuError(`--expires-in-days ${opts.expiresInDays} is not a whole number of days from 1 to 365`, ExitCode.badInput);
        const r = await makeRelease({
          buildDir: resolve(buildDir),
          buildKey,
          channelDir: resolve(opts.channelDir),
          channel: opts.channel,
          signingKey,
          rauc: { signer: { certPath: resolve(opts.raucCert), keyPath: resolve(opts.raucKey) }, keyring: resolve(opts.raucKeyring) },
          minimumVersion: opts.minVersion,
          expiresInDays: days,
          bundleBaseUrl: opts.bundleBaseUrl,
          now: new Date(),
          log,
        });
        const latest = r.isLatest ? 'and is now the newest' : 'but a newer version stays the newest';
        return {
          exitCode: ExitCode.ok,
          result: { ...r },
          summary: `released ${r.profile} ${r.version} on channel ${r.channel} ${latest}: bundle ${r.bundle.path} (${(r.bundle.sizeBytes / 1048576).toFixed(1)} MiB), manifest expires ${r.expiresAt}`,
        };
      }),
    );
};

async function readPublicKey(path: string) {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch {
    throw new MemuError(`cannot read the build key ${path}`, ExitCode.badInput, 'pass the .pub made by `memu keygen`');
  }
  try {
    return loadPublicKey(pem);
  } catch (err) {
    throw new MemuError(`${path} is not a usable public key: ${(err as Error).message}`, ExitCode.badInput, 'pass the .pub made by `memu keygen`');
  }
}
