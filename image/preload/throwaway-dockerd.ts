import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Logger } from '../host/log.ts';
import { runCommand, startProcess } from '../../shared/process/run-command.ts';

/** A dockerd of our own, isolated from the host's: own data-root, exec-root, socket, containerd. */
export interface ThrowawayDockerd {
  /** `unix:///tmp/…/docker.sock`, for `docker -H`. */
  host: string;
  socketPath: string;
  docker: Docker;
  /** Its network namespace (`/proc/PID/ns/net`): empty, loopback down. */
  networkNamespace: string;
  /** Stops the daemon (SIGTERM, then waits) and removes its runtime directory. */
  stop(): Promise<void>;
}

export interface ThrowawayDockerdOptions {
  dataRoot: string;
  log: Logger;
  dockerdPath?: string;
  /** Seconds to wait for the API. */
  startTimeoutSeconds?: number;
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.end();
  });
}

/** Mount points at or below `dir` (deepest first), from /proc/self/mountinfo. */
export async function mountsBelow(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const points = info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return points.sort((a, b) => b.length - a.length);
}

/**
 * Starts a dockerd that touches nothing of the host's engine: no bridge, no iptables,
 * its own daemon.json (empty, so /etc/docker/daemon.json is not read), its own
 * containerd under the exec-root, and the overlay2 driver the device uses. It runs in a
 * network namespace of its own (`unshare --net`): a dockerd started with `--bridge none`
 * deletes any `docker0` interface it sees, which would cut the host engine's containers
 * off the network. Loading images needs no network.
 */
export async function startThrowawayDockerd(opts: ThrowawayDockerdOptions): Promise<ThrowawayDockerd> {
  // Short paths: containerd puts unix sockets under the exec-root (108-byte limit).
  const runDir = await mkdtemp(join(tmpdir(), 'memu-dkd-'));
  const socketPath = join(runDir, 'docker.sock');
  const configFile = join(runDir, 'daemon.json');
  await writeFile(configFile, '{}\n');
  await mkdir(opts.dataRoot, { recursive: true });
  const logPath = join(runDir, 'dockerd.log');
  const args = [
    '--data-root', opts.dataRoot,
    '--exec-root', join(runDir, 'x'),
    '--pidfile', join(runDir, 'dockerd.pid'),
    '--host', `unix://${socketPath}`,
    '--config-file', configFile,
    '--storage-driver', 'overlay2',
    '--bridge', 'none',
    '--iptables=false',
    '--ip-masq=false',
    '--userland-proxy=false',
    '--log-level', 'warn',
  ];
  const { child, ended } = startProcess('unshare', ['--net', '--', opts.dockerdPath ?? 'dockerd', ...args], { stdout: { appendTo: logPath }, stderr: { appendTo: logPath } });
  const spawnError = ended.then((r) => (r.startError !== undefined ? new Error(r.startError) : undefined));
  const tail = async () => (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  opts.log.debug({ dataRoot: opts.dataRoot, socketPath, args }, 'starting throwaway dockerd');

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = ended;
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([exited.then(() => false), new Promise((r) => (timer = setTimeout(() => r(true), 60_000)))]);
      clearTimeout(timer);
      if (timedOut) {
        child.kill('SIGKILL');
        await exited;
        opts.log.warn({ dataRoot: opts.dataRoot }, 'throwaway dockerd did not stop within 60 s and was killed');
      }
    }
    // A killed daemon can leave overlay or shm mounts behind; none may stay under our dirs.
    for (const dir of [runDir, opts.dataRoot]) {
      for (const m of await mountsBelow(dir)) await runCommand('umount', ['-l', m]).catch(() => {});
    }
    await rm(runDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.startTimeoutSeconds ?? 60) * 1000;
  for (;;) {
    const failed = await Promise.race([spawnError, new Promise<undefined>((r) => setTimeout(() => r(undefined), 200))]);
    if (failed) {
      await rm(runDir, { recursive: true, force: true });
      throw new Error(`cannot run ${opts.dockerdPath ?? 'dockerd'}: ${failed.message} (install docker.io)`);
    }
    if (child.exitCode !== null) {
      const log = await tail();
      await stop();
      throw new Error(`throwaway dockerd exited with code ${child.exitCode}:\n${log}`);
    }
    if (await ping(socketPath)) break;
    if (Date.now() > deadline) {
      const log = await tail();
      await stop();
      throw new Error(`throwaway dockerd did not answer within ${opts.startTimeoutSeconds ?? 60} s:\n${log}`);
    }
  }
  // unshare execs dockerd in place, so the child's pid is the daemon's.
  return { host: `unix://${socketPath}`, socketPath, docker: new Docker({ socketPath }), networkNamespace: `/proc/${child.pid}/ns/net`, stop };
}
