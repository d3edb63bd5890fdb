import { resolve } from 'node:path';
import type { RegisterCommand } from '../main.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { generateSigningKey } from '../../release/signing-keys.ts';

export const registerKeygen: RegisterCommand = (program, run) => {
  program
    .command('keygen')
    .description('make an ed25519 signing key pair for images and releases (KEYBASE.key, KEYBASE.pub)')
    .requiredOption('--out <keybase>', 'path prefix of the key files, e.g. keys/memu-release')
    .action((opts: { out: string }) =>
      run(async ({ log }) => {
        const base = resolve(opts.out);
        try {
          const { keyPath, pubPath, keyId } = await generateSigningKey(base);
          log.info({ keyPath, pubPath, keyId }, 'signing key created');
          process.stdout.write(`${JSON.stringify({ keyPath, pubPath, keyId })}\n`);
          return ExitCode.ok;
        } catch (err) {
          throw new MemuError((err as Error).message, ExitCode.badInput, 'choose another --out, or delete the old key if you really mean to replace it');
        }
      }),
    );
};
