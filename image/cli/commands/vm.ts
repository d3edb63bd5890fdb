import { mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadProfile, profileNames, ProfileError } from '../../../hardware/index.ts';
import { AGENT_LIVENESS_PATH } from '../../../shared/contracts/agent-api.ts';
import { startVm, waitForAgent } from '../../vm/run-vm.ts';
import type { RegisterCommand } from '../command.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';

/** Sizes such as 8G, 512M or a byte count. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new MemuError(`"${text}" is not a size`, ExitCode.badInput, 'write sizes like 8G, 512M or 8589934592');
  const power = { '': 0, K: 1, M: 2, G: 3, T: 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(m[1]) * 1024 ** power);
}

export const registerVm: RegisterCommand = (program, run) => {
  program
    .command('vm')
    .description('boot a Memu image in QEMU (software emulation, UEFI) on a copy-on-write overlay; the image file is not changed')
    .argument('<image>', 'a raw .img from `memu build`')
    .option('--profile <name>', `VM profile: ${profileNames().join(', ')}`, 'qemu-amd64')
    .option('--disk-size <size>', 'virtual drive size, to emulate a bigger drive (e.g. 8G); default: the image size')
    .option('--memory <MiB>', 'guest memory in MiB', '2048')
    .option('--cpus <n>', 'guest CPUs', '2')
    .option('--no-network', 'boot offline: the guest has no route out (port forwards still work)')
    .option('--http-port <port>', 'host port (127.0.0.1) forwarded to the front door (guest 80); the agent is at /admin/ there', '8081')
    .option('--work-dir <dir>', 'where the overlay, firmware variables and serial log go (default: a new temp dir)')
    .option('--reuse-disk', 'boot the overlay left in --work-dir by an earlier run (a second boot of the same drive)')
    .option('--usb-drive <file>', 'plug a raw disk image in as a USB stick, e.g. a backup drive (an ext4 image labelled MEMU-BACKUP); the guest writes to it')
    .option('--wait-healthy', 'return once the agent says it has finished starting (ok or degraded, through the front door), then stop the VM')
    .option('--api-key <key>', "with --wait-healthy: also fetch the agent's health report with this key (the preseed's agentApiKey; or MEMU_AGENT_API_KEY)")
    .option('--timeout <seconds>', 'with --wait-healthy: give up after this long', '900')
    .addHelpText(
      'after',
      '\nThe LAN reaches the agent only through the front door, which is part of the stack: boot an\nimage built with --stack. Its health is at http://127.0.0.1:<http-port>/admin/healthz, the\nfull report at /admin/api/health with "Authorization: Bearer <agentApiKey>".',
    )
    .action(
      (image: string, opts: { profile: string; diskSize?: string; memory: string; cpus: string; network: boolean; httpPort: string; workDir?: string; reuseDisk?: boolean; usbDrive?: string; waitHealthy?: boolean; apiKey?: string; timeout: string }) =>
        run(async ({ log }) => {
          let profile;
          try {
            profile = loadProfile(opts.profile);
          } catch (err) {
            if (err instanceof ProfileError) throw new MemuError(err.message);
            throw err;
          }
          if (!profile.vm) throw new MemuError(`profile ${profile.name} is real hardware, not a virtual machine`, ExitCode.badInput, 'use --profile qemu-amd64 or --profile qemu-arm64');
          if (opts.reuseDisk && !opts.workDir) throw new MemuError('--reuse-disk needs --work-dir (the directory of the earlier run)');
          for (const [what, file] of [['image', image], ['--usb-drive', opts.usbDrive]] as const) {
            if (file !== undefined && !(await stat(file).then((st) => st.isFile(), () => false))) {
              throw new MemuError(`${what} ${file} is not a file`, ExitCode.badInput, what === 'image' ? 'give the .img that `memu build` wrote' : 'make one with: truncate -s 1G drive.img && mkfs.ext4 -L MEMU-BACKUP drive.img');
            }
          }
          const workDir = resolve(opts.workDir ?? (await mkdtemp(join(tmpdir(), 'memu-vm-'))));
          const started = Date.now();
          const vm = await startVm({
            image: resolve(image),
            profile,
            workDir,
            diskSizeBytes: opts.diskSize ? parseSize(opts.diskSize) : undefined,
            memoryMiB: Number(opts.memory),
            cpus: Number(opts.cpus),
            noNetwork: !opts.network,
            httpPort: Number(opts.httpPort),
            reuseDisk: opts.reuseDisk,
            usbDrive: opts.usbDrive,
            log,
          });
          const frontDoor = `http://127.0.0.1:${opts.httpPort}`;
          process.stderr.write(`serial console: ${vm.serialLog}\nfront door: ${frontDoor}/   agent: ${frontDoor}${AGENT_LIVENESS_PATH}\n`);
          const stop = () => void vm.stop(30_000);
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          if (opts.waitHealthy) {
            try {
              const answer = await waitForAgent({ httpPort: Number(opts.httpPort), apiKey: opts.apiKey ?? process.env.MEMU_AGENT_API_KEY, timeoutMs: Number(opts.timeout) * 1000 }).catch((err: Error) => {
                throw new MemuError(err.message, ExitCode.failure, `the serial console is in ${vm.serialLog}; an image built without --stack has no front door, so nothing answers`);
              });
              const seconds = (Date.now() - started) / 1000;
              return {
                exitCode: ExitCode.ok,
                result: { healthy: answer.status === 'ok', status: answer.status, bootToHealthySeconds: seconds, report: answer.report },
                summary: `the agent says ${answer.status} ${seconds.toFixed(1)} s after boot; VM stopped`,
              };
            } finally {
              await vm.stop(60_000);
            }
          }
          const code = await vm.exited;
          return { exitCode: code === 0 ? ExitCode.ok : ExitCode.failure, result: { qemuExitCode: code, serialLog: vm.serialLog }, summary: `VM powered off (QEMU exit ${code}); serial console in ${vm.serialLog}` };
        }),
    );
};
