import { copyFile, mkdir, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join, resolve } from 'node:path';
import type { HardwareProfile } from '../../hardware/profile.ts';
import { requireHostTools } from '../host/host-tools.ts';
import { runCommand, startProcess, type StartedProcess } from '../../shared/process/run-command.ts';
import type { Logger } from '../host/log.ts';
import { createGuestAgent, guestAgentQemuArgs, type GuestAgent } from './guest-agent.ts';
import { AGENT_DEFAULT_PORT, AGENT_HEALTH_PATH, AGENT_LIVENESS_PATH, type HealthStatus, type LivenessAnswer } from '../../shared/contracts/agent-api.ts';

/**
 * Boots a Memu image in QEMU (TCG: software emulation, no KVM) with UEFI firmware from
 * Debian (OVMF for x86-64, AAVMF for arm64's `virt` machine; both take the same flash,
 * PCI virtio and watchdog devices). The image file is never written (unless `driveInPlace`): the VM runs on a qcow2 overlay whose
 * virtual size can exceed the image (`diskSizeBytes`), which is how tests emulate a bigger
 * drive for first-boot growth. Serial console goes to a log file; QMP stops it cleanly.
 */
export interface VmOptions {
  image: string;
  profile: HardwareProfile;
  workDir: string;
  diskSizeBytes?: number;
  memoryMiB?: number;
  cpus?: number;
  /** No route out of the guest; the port forwards below still work. */
  noNetwork?: boolean;
  /** Host port (on 127.0.0.1) forwarded to the front door (guest port 80), the LAN's way to the agent. */
  httpPort: number;
  /**
   * Host port forwarded to the agent's own port (8080) on the guest's LAN address, where
   * nothing answers: the agent listens only on loopback and the Docker bridge. For tests
   * that check exactly that.
   */
  agentPort?: number;
  /** Keep the overlay from an earlier run in workDir (a second boot of the same disk). */
  reuseDisk?: boolean;
  /**
   * Boot `image` itself as the unit's drive, written in place, instead of an overlay: a drive
   * flashed by the QA station that goes back to the station afterwards. Its size is the file's.
   */
  driveInPlace?: boolean;
  /** The drive's bus, instead of the profile's: `nvme` emulates an NVMe SSD (factory QA's nvme checks). */
  diskInterface?: 'virtio' | 'nvme';
  /** The machine's serial number in its firmware tables (SMBIOS type 1), which factory QA records the unit by. QEMU sets none. */
  serialNumber?: string;
  /** A raw disk image plugged in as a USB stick (xHCI, usb-storage): the family's backup drive. Written by the guest. */
  usbDrive?: string;
  log: Logger;
}

export interface RunningVm {
  process: StartedProcess['child'];
  serialLog: string;
  /** The qcow2 overlay the guest writes (absent with `driveInPlace`, which writes the image). */
  overlay: string;
  /** Resolves with QEMU's exit code. */
  exited: Promise<number | null>;
  /** ACPI power button, then a hard quit after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** Hard reset, as pulling the power and plugging it back in. */
  reset(): Promise<void>;
  /** Commands inside the guest through the QEMU guest agent (test images carry qemu-guest-agent). */
  guest: GuestAgent;
}

const HTTP_GUEST_PORT = 80;

export async function startVm(opts: VmOptions): Promise<RunningVm> {
  const vm = opts.profile.vm;
  if (!vm) throw new Error(`profile ${opts.profile.name} is not a virtual machine target; use qemu-amd64 or qemu-arm64`);
  // QEMU's option syntax gives commas and equals signs a meaning.
  if (opts.serialNumber !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(opts.serialNumber)) throw new Error(`serial number "${opts.serialNumber}": use up to 64 letters, digits, dots, dashes and underscores`);
  await requireHostTools(['qemu-img', vm.qemuBinary === 'qemu-system-x86_64' ? 'qemu-system-x86_64' : 'qemu-system-aarch64']);
  await mkdir(opts.workDir, { recursive: true });
  const overlay = join(opts.workDir, 'disk.qcow2');
  const vars = join(opts.workDir, 'efivars.fd');
  const serialLog = join(opts.workDir, 'serial.log');
  const qmpSocket = join(opts.workDir, 'qmp.sock');
  const guestAgentSocket = join(opts.workDir, 'qga.sock');
  if (opts.driveInPlace) await copyFile(vm.firmwareVarsTemplate, vars);
  else if (!opts.reuseDisk) {
    await rm(overlay, { force: true });
    const args = ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', resolve(opts.image), overlay];
    if (opts.diskSizeBytes) args.push(String(opts.diskSizeBytes));
    await runCommand('qemu-img', args);
    await copyFile(vm.firmwareVarsTemplate, vars);
  }
  await rm(qmpSocket, { force: true });
  await rm(guestAgentSocket, { force: true });

  const netdev = [
    'user,id=net0',
    `hostfwd=tcp:127.0.0.1:${opts.httpPort}-:${HTTP_GUEST_PORT}`,
    ...(opts.agentPort ? [`hostfwd=tcp:127.0.0.1:${opts.agentPort}-:${AGENT_DEFAULT_PORT}`] : []),
    ...(opts.noNetwork ? ['restrict=on'] : []),
  ].join(',');
  const args = [
    '-machine', `${vm.machine},accel=tcg`,
    '-cpu', vm.cpu,
    '-smp', String(opts.cpus ?? 2),
    '-m', String(opts.memoryMiB ?? 2048),
    ...(opts.serialNumber ? ['-smbios', `type=1,serial=${opts.serialNumber}`] : []),
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${vm.firmwareCode}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${vars}`,
    '-drive', opts.driveInPlace ? `if=none,id=disk0,format=raw,file=${resolve(opts.image)},cache=writeback` : `if=none,id=disk0,format=qcow2,file=${overlay},cache=unsafe,discard=unmap`,
    '-device', (opts.diskInterface ?? vm.diskInterface) === 'nvme' ? 'nvme,drive=disk0,serial=memu-vm-0,bootindex=1' : 'virtio-blk-pci,drive=disk0,bootindex=1',
    '-netdev', netdev,
    '-device', 'virtio-net-pci,netdev=net0',
    '-device', 'virtio-rng-pci',
    ...(opts.usbDrive
      ? ['-device', 'qemu-xhci,id=xhci', '-drive', `if=none,id=usb0,format=raw,file=${resolve(opts.usbDrive)},cache=unsafe`, '-device', 'usb-storage,bus=xhci.0,drive=usb0,removable=on']
      : []),
    ...(vm.watchdogDevice ? ['-device', vm.watchdogDevice, '-action', 'watchdog=reset'] : []),
    ...guestAgentQemuArgs(guestAgentSocket),
    '-serial', `file:${serialLog}`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
    '-display', 'none',
    '-no-user-config',
    '-nodefaults',
  ];
  opts.log.info({ image: opts.image, overlay, serialLog, agentPort: opts.agentPort, httpPort: opts.httpPort, noNetwork: Boolean(opts.noNetwork) }, 'starting VM');
  const { child, ended } = startProcess(vm.qemuBinary, args, { stdout: 'ignore' });
  const exited = ended.then((r) => {
    opts.log.info({ code: r.code, stderr: r.stderr.trim() || r.startError }, 'VM exited');
    return r.code;
  });

  const qmp = (command: string) => sendQmp(qmpSocket, command);
  const guest = createGuestAgent(guestAgentSocket);
  void exited.then(() => guest.close());
  return {
    process: child,
    serialLog,
    overlay,
    exited,
    async stop(graceMs = 60_000) {
      if (child.exitCode !== null) return;
      await qmp('system_powerdown').catch(() => undefined);
      const timer = setTimeout(() => void qmp('quit').catch(() => child.kill('SIGKILL')), graceMs);
      await exited;
      clearTimeout(timer);
    },
    async reset() {
      await qmp('system_reset');
    },
    guest,
  };
}

/** Sends one QMP command (after the capabilities handshake) and waits for its reply. */
async function sendQmp(socketPath: string, command: string): Promise<void> {
  await new Promise<void>((resolveDone, reject) => {
    const sock = createConnection(socketPath);
    let buffer = '';
    let step = 0;
    sock.setTimeout(10_000, () => {
      sock.destroy();
      reject(new Error(`QMP ${command}: no answer`));
    });
    sock.on('error', reject);
    sock.on('data', (d) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        if (step === 0 && 'QMP' in msg) {
          sock.write('{"execute":"qmp_capabilities"}\n');
          step = 1;
        } else if (step === 1 && 'return' in msg) {
          sock.write(`${JSON.stringify({ execute: command })}\n`);
          step = 2;
        } else if (step === 2 && ('return' in msg || 'error' in msg)) {
          sock.end();
          if ('error' in msg) reject(new Error(`QMP ${command}: ${JSON.stringify(msg.error)}`));
          else resolveDone();
        }
      }
    });
  });
}

export interface AgentAnswer {
  /** The liveness word (AGENT_LIVENESS_PATH). */
  status: HealthStatus;
  /** The health report (AGENT_HEALTH_PATH), when an API key was given. */
  report?: Record<string, unknown>;
}

/**
 * Asks the agent through the front door, as the LAN does, until `isReady` accepts the
 * answer or time runs out: the liveness word, plus the health report when `apiKey` is
 * given. An image without a stack has no front door, so nothing ever answers.
 */
export async function waitForAgent(opts: {
  httpPort: number;
  apiKey?: string;
  timeoutMs: number;
  isReady?: (answer: AgentAnswer) => boolean;
  /** Between two questions; default 2 s. */
  pollMs?: number;
}): Promise<AgentAnswer> {
  const base = `http://127.0.0.1:${opts.httpPort}`;
  const isReady = opts.isReady ?? ((a) => a.status !== 'starting');
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const live = await fetch(`${base}${AGENT_LIVENESS_PATH}`, { signal: AbortSignal.timeout(5000) });
      if (!live.ok) throw new Error(`${AGENT_LIVENESS_PATH} answered HTTP ${live.status}`);
      const answer: AgentAnswer = { status: ((await live.json()) as LivenessAnswer).status };
      if (opts.apiKey) {
        const res = await fetch(`${base}${AGENT_HEALTH_PATH}`, { headers: { authorization: `Bearer ${opts.apiKey}` }, signal: AbortSignal.timeout(5000) });
        if (res.status === 401) throw new Error(`${AGENT_HEALTH_PATH} refused the API key (HTTP 401): is it the agentApiKey the image was preseeded with?`);
        answer.report = (await res.json()) as Record<string, unknown>;
      }
      last = JSON.stringify(answer.report ?? answer);
      if (isReady(answer)) return answer;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 2000));
  }
  throw new Error(`the agent did not become ready within ${Math.round(opts.timeoutMs / 1000)} s through the front door on ${base} (last: ${last})`);
}
