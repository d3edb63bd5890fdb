import { resolve } from 'node:path';
import type { RegisterCommand } from '../command.ts';
import { ExitCode } from '../../host/errors.ts';
import { generateSigningKey } from '../../release/signing-keys.ts';

export const registerKeygen: RegisterCommand = (program, run) => {
  program
    .command('keygen')
    .description('make an ed25519 signing key pair for images and releases (KEYBASE.key, KEYBASE.pub)')
    .requiredOption('--out <keybase>', 'path prefix of the key files, e.g. keys/memu-release')
    .action((opts: { out: string }) =>
      run(async ({ log }) => {
        const { keyPath, pubPath, keyId } = await generateSigningKey(resolve(opts.out));
        log.debug({ keyPath, pubPath, keyId }, 'signing key created');
        return { exitCode: ExitCode.ok, result: { keyPath, pubPath, keyId }, summary: `made signing key ${keyPath} (key id ${keyId}); give ${pubPath} to whoever verifies` };
      }),
    );
};
