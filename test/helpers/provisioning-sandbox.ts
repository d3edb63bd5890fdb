import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pino, { type Logger } from 'pino';
import { ProvisioningJournal, type ProvisioningState } from '../../agent/provisioning/journal.ts';
import { createFirstBootSteps, type FirstBootContext } from '../../agent/provisioning/steps/first-boot-steps.ts';
import { firstBootPaths } from '../../agent/provisioning/steps/first-boot-context.ts';
import { makeGptDisk } from './fat-disk.ts';

/**
 * A device in a temp dir for the first-boot steps: a real GPT disk image with a real
 * FAT (mtools), a data dir, a root dir (with a fixed machine id), a fake sysfs listing
 * one wireless interface, and where the fake tailscaled's socket goes. Also runnable
 * as a script, so crash tests can SIGKILL a real provisioning run:
 *
 *   node --import tsx test/helpers/provisioning-sandbox.ts SANDBOX_DIR
 *
 * runs the real ProvisioningJournal over createFirstBootSteps(); with
 * MEMU_TEST_CRASH_AT=<fault point> it SIGKILLs itself when a step reaches that point.
 */
const execFileAsync = promisify(execFile);

export interface ProvisioningSandbox {
  dir: string;
  dataDir: string;
  rootDir: string;
  disk: string;
  fatOffset: number;
  socketPath: string;
  logPath: string;
  sysClassNetDir: string;
}

export const SANDBOX_MACHINE_ID = '0123456789abcdef0123456789abcdef';

export async function createProvisioningSandbox(opts: { preseed?: string | Buffer } = {}): Promise<ProvisioningSandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-firstboot-'));
  const { path: disk, offsets } = await makeGptDisk(dir);
  const sandbox: ProvisioningSandbox = {
    dir,
    dataDir: join(dir, 'data'),
    rootDir: join(dir, 'root'),
    disk,
    fatOffset: offsets[0]!,
    socketPath: join(dir, 'run', 'tailscaled.sock'),
    logPath: join(dir, 'agent.log'),
    sysClassNetDir: join(dir, 'sys-class-net'),
  };
  await mkdir(join(sandbox.rootDir, 'etc'), { recursive: true });
  await writeFile(join(sandbox.rootDir, 'etc/machine-id'), `${SANDBOX_MACHINE_ID}\n`);
  await mkdir(join(sandbox.sysClassNetDir, 'eth0'), { recursive: true });
  await mkdir(join(sandbox.sysClassNetDir, 'wlp2s0', 'wireless'), { recursive: true });
  await mkdir(sandbox.dataDir, { recursive: true });
  if (opts.preseed !== undefined) {
    // From a file rather than stdin: mcopy may stop reading a pipe early (EPIPE) for large input.
    const source = join(dir, 'preseed-source.json');
    await writeFile(source, opts.preseed);
    await execFileAsync('mcopy', ['-o', '-i', `${disk}@@${sandbox.fatOffset}`, source, '::/memu-preseed.json'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    await rm(source);
  }
  await writeFile(join(dir, 'sandbox.json'), JSON.stringify(sandbox));
  return sandbox;
}

export function sandboxContext(sandbox: ProvisioningSandbox, extra: Partial<FirstBootContext> = {}): FirstBootContext {
  return {
    dataDir: sandbox.dataDir,
    rootDir: sandbox.rootDir,
    fatDevice: sandbox.disk,
    tailscaleSocket: sandbox.socketPath,
    sysClassNetDir: sandbox.sysClassNetDir,
    tailscale: { socketWaitMs: 1500, joinTimeoutMs: 3000, pollIntervalMs: 50 },
    ...extra,
  };
}

/** A pino logger writing synchronously to the sandbox's log file (so lines survive a SIGKILL). */
export function sandboxLogger(sandbox: ProvisioningSandbox): Logger {
  return pino({ level: 'debug' }, pino.destination({ dest: sandbox.logPath, sync: true, append: true, mkdir: true }));
}

export async function runFirstBoot(sandbox: ProvisioningSandbox, extra: Partial<FirstBootContext> = {}): Promise<ProvisioningState> {
  const log = sandboxLogger(sandbox);
  const journal = new ProvisioningJournal(firstBootPaths(sandbox.dataDir).journal, createFirstBootSteps(sandboxContext(sandbox, extra)), log);
  return journal.run();
}

async function main(dir: string): Promise<void> {
  const sandbox = JSON.parse(await readFile(join(dir, 'sandbox.json'), 'utf8')) as ProvisioningSandbox;
  const crashAt = process.env.MEMU_TEST_CRASH_AT;
  const state = await runFirstBoot(sandbox, {
    faultInjection: (point) => {
      if (point === crashAt) process.kill(process.pid, 'SIGKILL');
    },
  });
  process.stdout.write(`${JSON.stringify(state)}\n`);
  process.exitCode = state.state === 'done' ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main(process.argv[2] ?? '.');
}
