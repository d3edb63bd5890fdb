import { resolve } from 'node:path';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { generateRaucPki } from '../../release/rauc-certificates.ts';
import { generateSigningKey } from '../../release/signing-keys.ts';

export const registerKeygen: RegisterCommand = (program, run) => {
  program
    .command('keygen')
    .description('make the keys a company signs with: an ed25519 key pair for images and release manifests (--out), and the RAUC CA and signing certificate for OS update bundles (--rauc)')
    .option('--out <keybase>', 'path prefix of the ed25519 key files KEYBASE.key and KEYBASE.pub, e.g. keys/memu-release')
    .option('--rauc <dir>', 'new directory for the RAUC PKI: ca.cert.pem, ca.key.pem, signing.cert.pem, signing.key.pem')
    .option('--organization <name>', 'organization named in the RAUC certificates (with --rauc)', 'Memu')
    .addHelpText(
      'after',
      [
        '',
        'With --rauc DIR (files are never overwritten):',
        '  ca.cert.pem       the keyring: `memu build --rauc-keyring DIR/ca.cert.pem` puts it into',
        '                    every image as /etc/rauc/keyring.pem; `memu release --rauc-keyring` checks with it',
        '  ca.key.pem        the CA key: issues signing certificates; keep it offline, never on a build machine',
        '  signing.cert.pem  `memu release --rauc-cert`',
        '  signing.key.pem   `memu release --rauc-key`',
        'Without --rauc-keyring, `memu build` makes and uses a development CA under the cache dir.',
      ].join('\n'),
    )
    .action((opts: { out?: string; rauc?: string; organization: string }) =>
      run(async ({ log }) => {
        if (!opts.out && !opts.rauc) {
          throw new MemuError('nothing to make: name --out KEYBASE (image and release signing key) and/or --rauc DIR (RAUC CA and signing certificate)', ExitCode.badInput, 'e.g. memu keygen --out keys/memu-release --rauc keys/rauc');
        }
        const result: Record<string, string> = {};
        const summary: string[] = [];
        if (opts.out) {
          const { keyPath, pubPath, keyId } = await generateSigningKey(resolve(opts.out));
          log.debug({ keyPath, pubPath, keyId }, 'signing key created');
          Object.assign(result, { keyPath, pubPath, keyId });
          summary.push(`made signing key ${keyPath} (key id ${keyId}); give ${pubPath} to whoever verifies`);
        }
        if (opts.rauc) {
          const pki = await generateRaucPki(resolve(opts.rauc), { organization: opts.organization });
          Object.assign(result, { raucKeyring: pki.keyring, raucCaKey: pki.caKey, raucCert: pki.signer.certPath, raucKey: pki.signer.keyPath });
          summary.push(
            `made the RAUC CA ${pki.keyring} (build images with --rauc-keyring ${pki.keyring}) and signing certificate ${pki.signer.certPath} with key ${pki.signer.keyPath};`,
            `  move ${pki.caKey} somewhere offline`,
          );
        }
        return { exitCode: ExitCode.ok, result, summary: summary.join('\n') };
      }),
    );
};
