import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadPublicKey } from '../../../shared/contracts/signature.ts';
import { developmentPublicKeyPath } from '../../pipeline/pipeline.ts';
import { verifyImageDirectory } from '../../release/verify-output.ts';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';

export const registerVerify: RegisterCommand = (program, run) => {
  program
    .command('verify')
    .description("check a build output directory: the manifest's signature, then the size and sha256 of every artifact")
    .argument('<dir>', 'a `memu build` output directory')
    .option('--key <path>', 'trusted public key (.pub); default: $MEMU_TRUSTED_KEY, else the local development key')
    .action((dir: string, opts: { key?: string }) =>
      run(async ({ log }) => {
        const keyPath = opts.key ?? process.env.MEMU_TRUSTED_KEY ?? developmentPublicKeyPath();
        let pem: Buffer;
        try {
          pem = await readFile(keyPath);
        } catch {
          throw new MemuError(`cannot read the trusted public key ${keyPath}`, ExitCode.badInput, 'pass --key PATH.pub (the .pub made by `memu keygen`)');
        }
        let key;
        try {
          key = loadPublicKey(pem);
        } catch (err) {
          throw new MemuError(`${keyPath} is not a usable public key: ${(err as Error).message}`, ExitCode.badInput, 'pass the .pub file made by `memu keygen`');
        }
        if (!opts.key && !process.env.MEMU_TRUSTED_KEY) log.warn({ key: keyPath }, 'checking against the local development key; pass --key for release images');
        const report = await verifyImageDirectory(resolve(dir), key, (name) => log.info({ file: name }, 'checking'));
        const result = { keyId: report.keyId, checked: report.checked, problems: report.problems };
        if (report.ok) return { exitCode: ExitCode.ok, result, summary: `signature (key ${report.keyId}) and all ${report.checked.length} artifacts verified` };
        return {
          exitCode: ExitCode.verifyFailed,
          result,
          summary: `verification FAILED:\n${report.problems.map((p) => `  ${p.file}: ${p.problem}`).join('\n')}`,
        };
      }),
    );
};
