import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadProfile, profileNames, ProfileError } from '../../../hardware/index.ts';
import { startVm, waitForHealthz } from '../../vm/run-vm.ts';
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
    .option('--agent-port <port>', 'host port (127.0.0.1) forwarded to the agent (guest 8080)', '8080')
    .option('--http-port <port>', 'host port (127.0.0.1) forwarded to the front door (guest 80)', '8081')
    .option('--work-dir <dir>', 'where the overlay, firmware variables and serial log go (default: a new temp dir)')
    .option('--reuse-disk', 'boot the overlay left in --work-dir by an earlier run (a second boot of the same drive)')
    .option('--wait-healthy', 'return once the agent answers /healthz with provisioning done, then stop the VM')
    .option('--timeout <seconds>', 'with --wait-healthy: give up after this long', '900')
    .action(
      (image: string, opts: { profile: string; diskSize?: string; memory: string; cpus: string; network: boolean; agentPort: string; httpPort: string; workDir?: string; reuseDisk?: boolean; waitHealthy?: boolean; timeout: string }) =>
        run(async ({ log }) => {
          let profile;
          try {
            profile = loadProfile(opts.profile);
          } catch (err) {
            if (err instanceof ProfileError) throw new MemuError(err.message);
            throw err;
          }
          if (!profile.vm) throw new MemuError(`profile ${profile.name} is real hardware, not a virtual machine`, ExitCode.badInput, 'use --profile qemu-amd64');
          if (opts.reuseDisk && !opts.workDir) throw new MemuError('--reuse-disk needs --work-dir (the directory of the earlier run)');
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
            agentPort: Number(opts.agentPort),
            httpPort: Number(opts.httpPort),
            reuseDisk: opts.reuseDisk,
            log,
          });
          process.stderr.write(`serial console: ${vm.serialLog}\nagent: http://127.0.0.1:${opts.agentPort}/healthz   front door: http://127.0.0.1:${opts.httpPort}/\n`);
          const stop = () => void vm.stop(30_000);
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          if (opts.waitHealthy) {
            try {
              const body = await waitForHealthz(Number(opts.agentPort), Number(opts.timeout) * 1000, (b) => {
                const state = (b.provisioning as { state?: string } | undefined)?.state;
                return state === 'done';
              });
              const seconds = (Date.now() - started) / 1000;
              return { exitCode: ExitCode.ok, result: { healthy: true, bootToHealthySeconds: seconds, healthz: body }, summary: `the agent reported provisioning done ${seconds.toFixed(1)} s after boot; VM stopped` };
            } finally {
              await vm.stop(60_000);
            }
          }
          const code = await vm.exited;
          return { exitCode: code === 0 ? ExitCode.ok : ExitCode.failure, result: { qemuExitCode: code, serialLog: vm.serialLog }, summary: `VM powered off (QEMU exit ${code}); serial console in ${vm.serialLog}` };
        }),
    );
};
