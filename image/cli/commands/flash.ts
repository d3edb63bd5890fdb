import { createInterface } from 'node:readline/promises';
import type { CommandOutcome, RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { formatBytes } from '../../host/progress.ts';
import { flashImage, type BlockDevice, type FlashResult } from '../../flash/index.ts';
import { loadPreseedSettings, writePreseed } from '../../preseed/write.ts';
import { abortOnSigint } from '../abort-on-sigint.ts';

interface FlashCliOptions {
  bmap?: string;
  verify: boolean;
  yes?: boolean;
  unmount?: boolean;
  allowPartition?: boolean;
  direct: boolean;
  preseed?: string;
}

/** Asks on the terminal; the person must type the drive's name, so a stray Enter erases nothing. */
async function confirmOnTerminal(device: BlockDevice, signal: AbortSignal): Promise<boolean> {
  const facts = [
    `  drive:   ${device.path}`,
    `  model:   ${[device.vendor, device.model].filter(Boolean).join(' ') || 'unknown'}`,
    `  size:    ${formatBytes(device.sizeBytes)} (${device.sizeBytes} bytes)`,
    `  serial:  ${device.serial ?? 'unknown'}`,
    `  via:     ${device.transport ?? 'unknown'}${device.removable ? ', removable' : ''}`,
  ];
  if (device.partitions.length > 0) facts.push(`  holds:   ${device.partitions.map((p) => `${p.path}${p.label ? ` "${p.label}"` : ''}${p.fstype ? ` ${p.fstype}` : ''}`).join(', ')}`);
  process.stderr.write(`\nEVERYTHING on this drive will be overwritten:\n${facts.join('\n')}\n\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  // On a terminal readline takes Ctrl-C as a key press; make it the signal it stands for.
  rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  try {
    const answer = await rl.question(`Type the drive name (${device.name}) to flash it, anything else to stop: `, { signal });
    return answer.trim() === device.name || answer.trim() === device.path;
  } catch (err) {
    if (signal.aborted) return false;
    throw err;
  } finally {
    rl.close();
  }
}

export const registerFlash: RegisterCommand = (program, run) => {
  program
    .command('flash')
    .description('write a built image (raw, .zst, .xz or .gz) to a drive or a file, only its data (by its .bmap), then read it back to verify')
    .argument('<image>', 'the image: memu-*.img, or .img.zst / .img.xz / .img.gz')
    .argument('<target>', 'a whole drive (see `memu devices`, e.g. /dev/sdb or /dev/disk/by-id/...) or a file path')
    .option('--bmap <file>', "block map of the image (default: the one beside it, named as `memu build` names it (memu-<profile>-<version>.bmap) or as bmaptool does (IMAGE.bmap))")
    .option('--no-verify', "skip reading the target back (the bmap's checksums are still checked while writing; not recommended)")
    .option('-y, --yes', 'do not ask before overwriting a drive (for scripts and factory stations)')
    .option('--unmount', "unmount the drive's mounted partitions first instead of refusing")
    .option('--allow-partition', 'allow writing into a partition instead of a whole drive')
    .option('--preseed <settings.json>', 'after flashing, write these first-boot settings onto the drive (validated before anything is written; see docs/preseed.md)')
    .option('--no-direct', 'use buffered I/O instead of O_DIRECT (for drives that mishandle direct I/O)')
    .addHelpText(
      'after',
      `
Never preselects a drive. Refuses the drive holding / or /boot, drives with mounted
partitions (unless --unmount), drives in use (LVM, RAID, another program holding them),
read-only drives, partitions (unless --allow-partition), drives smaller than the image,
and a target that is the image or its bmap under any name (a link, or a loop device
reading it). Overwriting a drive needs --yes or typing its name on a terminal.

Ctrl-C stops it: the target's partition table is cleared before anything else is
written and the image's is written last, so a drive left half-written never boots or
passes for a good one; flash it again.

Exit codes: 0 ok, 2 bad or corrupt input (image, bmap, target directory), 3 missing tool
or permission, 4 read-back verification failed, 5 target refused, 6 write error,
130 interrupted (Ctrl-C).`,
    )
    .action((image: string, target: string, opts: FlashCliOptions) =>
      run(async (ctx) => {
        const interactive = Boolean(process.stdin.isTTY && process.stderr.isTTY) && !ctx.json;
        // Bad settings are refused before the drive is touched, not after a long flash.
        const settings = opts.preseed ? await loadPreseedSettings({ settingsFile: opts.preseed }) : undefined;
        const { signal, release } = abortOnSigint(ctx.log);
        try {
          const result = await flashImage({
            image,
            target,
            ...(opts.bmap ? { bmap: opts.bmap } : {}),
            verify: opts.verify,
            log: ctx.log,
            progress: ctx.progress,
            yes: Boolean(opts.yes),
            ...(interactive ? { confirm: (device: BlockDevice) => confirmOnTerminal(device, signal) } : {}),
            unmount: Boolean(opts.unmount),
            allowPartition: Boolean(opts.allowPartition),
            direct: opts.direct,
            signal,
          });
          if (settings && signal.aborted) {
            throw new MemuError(
              `interrupted: ${result.target} was flashed${result.verified ? ' and verified' : ''}, but the first-boot settings were not written`,
              ExitCode.interrupted,
              `write them with: memu preseed --device ${result.target} --file ${opts.preseed}`,
            );
          }
          const preseeded = settings ? await writePreseed({ target, settings, log: ctx.log }) : undefined;
          return outcome(result, preseeded);
        } finally {
          release();
        }
      }),
    );
};

function outcome(result: FlashResult, preseeded: Awaited<ReturnType<typeof writePreseed>> | undefined): CommandOutcome {
  return {
    exitCode: ExitCode.ok,
    result: { ...result, ...(preseeded ? { preseed: preseeded } : {}) },
    summary:
      `flashed ${result.image} to ${result.target}: ${formatBytes(result.bytesWritten)} written of a ${formatBytes(result.imageSize)} image in ${result.seconds.toFixed(1)}s` +
      `${result.verified ? ', verified by reading back' : ', NOT verified (--no-verify)'}` +
      `${preseeded ? `; first-boot settings written to partition ${preseeded.partition}` : ''}`,
  };
}
