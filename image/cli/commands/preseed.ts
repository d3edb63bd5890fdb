import { resolve } from 'node:path';
import { stat } from 'node:fs/promises';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { loadPreseedSettings, writePreseed } from '../../preseed/write.ts';
import { PRESEED_FILE_NAME, presentPreseedFields } from '../../../shared/contracts/preseed.ts';

interface PreseedOptions {
  image?: string;
  device?: string;
  file: string;
  check?: boolean;
}

export const registerPreseed: RegisterCommand = (program, run) => {
  program
    .command('preseed')
    .description(`validate first-boot settings and write them as ${PRESEED_FILE_NAME} to a Memu image or drive (see docs/preseed.md)`)
    .requiredOption('--file <settings.json>', 'the settings file (JSON, "version": 1)')
    .option('--image <file>', 'write into this disk image file')
    .option('--device <dev>', 'write onto this drive, e.g. /dev/sdb (not mounted; needs root)')
    .option('--check', 'only validate the settings file; write nothing')
    .addHelpText(
      'after',
      `\nExamples:\n  memu preseed --check --file settings.json\n  memu preseed --image memu-nuc.img --file settings.json\n  sudo memu preseed --device /dev/sdb --file settings.json`,
    )
    .action((opts: PreseedOptions) =>
      run(async ({ log }) => {
        const targets = [opts.image, opts.device].filter((t) => t !== undefined);
        if (opts.check && targets.length > 0) {
          throw new MemuError('--check only validates; it takes no --image or --device', ExitCode.badInput, 'drop --check to write, or drop the target to validate');
        }
        if (!opts.check && targets.length !== 1) {
          throw new MemuError(
            targets.length === 0 ? 'no target given' : 'give only one of --image and --device',
            ExitCode.badInput,
            'pass exactly one of --image IMG or --device DEV (or --check to only validate)',
          );
        }
        const settingsFile = resolve(opts.file);
        if (opts.check) {
          const settings = await loadPreseedSettings({ settingsFile });
          const result = { valid: true, file: settingsFile, fields: presentPreseedFields(settings) };
          return { exitCode: ExitCode.ok, result, summary: `${opts.file} is valid (${result.fields.join(', ') || 'no settings besides the version'})` };
        }

        const target = resolve((opts.image ?? opts.device)!);
        await checkTargetKind(target, opts.image !== undefined ? 'image' : 'device');
        const settings = await loadPreseedSettings({ settingsFile });
        const { partition, offset } = await writePreseed({ target, settings, log });
        const result = { target, partition, offset, file: PRESEED_FILE_NAME, fields: presentPreseedFields(settings) };
        return { exitCode: ExitCode.ok, result, summary: `wrote ${PRESEED_FILE_NAME} to ${target} partition ${partition} (byte offset ${offset})` };
      }),
    );
};

/** --image must be a regular file and --device a block device, so a typo cannot swap them. */
async function checkTargetKind(target: string, kind: 'image' | 'device'): Promise<void> {
  const info = await stat(target).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot open ${target}: ${err.code === 'ENOENT' ? 'no such file' : (err.code ?? err.message)}`, ExitCode.badInput, `check the --${kind} path`);
  });
  if (kind === 'image' && !info.isFile()) {
    throw new MemuError(`${target} is not a disk image file`, ExitCode.badInput, info.isBlockDevice() ? 'use --device for drives' : 'pass a Memu .img file');
  }
  if (kind === 'device' && !info.isBlockDevice()) {
    throw new MemuError(`${target} is not a block device`, ExitCode.badInput, info.isFile() ? 'use --image for image files' : 'pass a drive such as /dev/sdb');
  }
}
