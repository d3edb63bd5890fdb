/**
 * Docker fixtures for the stack reconciler's tests and benchmark: a tiny busybox image
 * built from Debian's `busybox-static` package (no registry needed to build it), pushed
 * once to a throwaway local registry so that dockerd records a real repo digest for it —
 * exactly how a preloaded image looks on a device (pulled by digest) — plus helpers to
 * write compose projects and to clean a stack up.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import type { ImageLock, Platform } from '../../shared/contracts/image-lock.ts';
import { STACK_LABEL } from '../../agent/stack/labels.ts';

const run = promisify(execFile);

/** Ports reserved for the stack reconciler's tests: 18200–18299. */
export const STACK_TEST_PORTS = { first: 18200, last: 18299 } as const;
/** The throwaway registry that gives test images their digests. */
const REGISTRY_PORT = 18290;
const REGISTRY_HOST = `127.0.0.1:${REGISTRY_PORT}`;
const FIXTURE_LABEL = 'org.memu.test-fixture';
const BUSYBOX_APPLETS = ['sh', 'sleep', 'test', 'touch', 'rm', 'cat', 'echo', 'wget', 'httpd', 'mkdir', 'env', 'true', 'false', 'kill', 'ls', 'id'];

export interface TestImage {
  /** As written in compose files and as the lock key: `127.0.0.1:18290/memu-test/busybox:1`. */
  reference: string;
  /** Manifest digest recorded by dockerd (`sha256:…`). */
  digest: string;
  /** `repo@digest`, what the agent runs. */
  pinned: string;
}

export interface TestImages {
  busybox: TestImage;
  platform: Platform;
  /** An image lock naming the test image for this machine's platform. */
  lock: ImageLock;
}

export function dockerClient(): Dockerode {
  return new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
}

export function hostPlatform(): Platform {
  return process.arch === 'arm64' ? 'linux/arm64' : 'linux/amd64';
}

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'memu', 'stack-fixtures');
}

/** `/bin/busybox` from Debian's busybox-static package (installed, or downloaded and unpacked). */
async function busyboxBinary(): Promise<string> {
  const installed = await run('dpkg-query', ['-W', '-f=${Status}', 'busybox-static']).then(
    (r) => r.stdout.includes('install ok installed'),
    () => false,
  );
  if (installed && existsSync('/bin/busybox')) return '/bin/busybox';
  const dir = cacheDir();
  const unpacked = join(dir, 'busybox-static', 'bin', 'busybox');
  if (existsSync(unpacked)) return unpacked;
  await mkdir(dir, { recursive: true });
  const findDeb = async () => (await readdir(dir)).find((f) => f.startsWith('busybox-static_') && f.endsWith('.deb'));
  if (!(await findDeb())) {
    await run('apt-get', ['download', 'busybox-static'], { cwd: dir }).catch(async () => {
      await run('apt-get', ['update', '-qq']);
      await run('apt-get', ['download', 'busybox-static'], { cwd: dir });
    });
  }
  const deb = await findDeb();
  if (!deb) throw new Error(`apt-get download busybox-static left no .deb in ${dir}`);
  await run('dpkg-deb', ['-x', join(dir, deb), join(dir, 'busybox-static')]);
  return unpacked;
}

async function localDigest(docker: Dockerode, repo: string, variant: string): Promise<string | undefined> {
  const images = await docker.listImages({ filters: { label: [`${FIXTURE_LABEL}=${variant}`] } });
  for (const image of images) {
    const digest = (image.RepoDigests ?? []).find((d) => d.startsWith(`${repo}@`));
    if (digest) return digest.slice(repo.length + 1);
  }
  return undefined;
}

/**
 * Builds (once per machine) `127.0.0.1:18290/memu-test/<variant>:1` and returns it with
 * a lock. Idempotent and cached in dockerd: later calls cost one `listImages`.
 */
export async function ensureTestImages(variant = 'busybox'): Promise<TestImages> {
  const docker = dockerClient();
  const platform = hostPlatform();
  const repo = `${REGISTRY_HOST}/memu-test/${variant}`;
  const reference = `${repo}:1`;
  let digest = await localDigest(docker, repo, variant);
  if (!digest) {
    const context = await mkdtemp(join(tmpdir(), 'memu-stack-image-'));
    try {
      // Applet links are made here, not with RUN: a build step would need a working bridge network.
      const rootfs = join(context, 'rootfs');
      for (const dir of ['bin', 'tmp', 'www']) await mkdir(join(rootfs, dir), { recursive: true });
      await copyFile(await busyboxBinary(), join(rootfs, 'bin', 'busybox'));
      await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
      await chmod(join(rootfs, 'tmp'), 0o1777);
      for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(rootfs, 'bin', applet));
      await writeFile(join(rootfs, 'www', 'index.html'), 'memu test page\n');
      await writeFile(
        join(context, 'Dockerfile'),
        ['FROM scratch', 'COPY rootfs/ /', `LABEL ${FIXTURE_LABEL}=${variant}`, 'CMD ["sh"]', ''].join('\n'),
      );
      await run('docker', ['build', '-q', '-t', reference, context]);
    } finally {
      await rm(context, { recursive: true, force: true });
    }
    await withTestRegistry(() => run('docker', ['push', reference]));
    digest = await localDigest(docker, repo, variant);
    if (!digest) throw new Error(`pushing ${reference} recorded no repo digest`);
  }
  const busybox = { reference, digest, pinned: `${repo}@${digest}` };
  return {
    busybox,
    platform,
    lock: { format: 'memu-image-lock/1', images: { [reference]: { platforms: { [platform]: digest } } } },
  };
}

/**
 * Runs `fn` while Debian's docker-registry serves 127.0.0.1:18290 from a cache dir
 * (kept, so a later pull by digest finds what an earlier push stored).
 */
export async function withTestRegistry<T>(fn: () => Promise<T>): Promise<T> {
  const dir = join(cacheDir(), 'registry');
  await mkdir(join(dir, 'storage'), { recursive: true });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      'storage:',
      `  filesystem: { rootdirectory: ${JSON.stringify(join(dir, 'storage'))} }`,
      'http:',
      `  addr: ${REGISTRY_HOST}`,
      '  secret: memu-stack-test',
      '',
    ].join('\n'),
  );
  const child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      const up = await fetch(`http://${REGISTRY_HOST}/v2/`).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not start on ${REGISTRY_HOST}: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return await fn();
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  }
}

/** A unique compose project name (lowercase, compose-valid). */
export function uniqueProject(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Writes compose files (and any extra files) into a fresh temp dir; returns it. */
export async function writeProject(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-stack-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** Removes every container, network and volume labelled for the project. */
export async function removeStack(project: string): Promise<void> {
  const docker = dockerClient();
  const filters = { label: [`${STACK_LABEL}=${project}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  const networks = await docker.listNetworks({ filters });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
  const volumes = (await docker.listVolumes({ filters })).Volumes ?? [];
  await Promise.all(volumes.map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)));
}

/** Containers of a project by service name. */
export async function containersByService(project: string): Promise<Record<string, Dockerode.ContainerInfo>> {
  const docker = dockerClient();
  const list = await docker.listContainers({ all: true, filters: { label: [`${STACK_LABEL}=${project}`] } });
  return Object.fromEntries(list.map((c) => [c.Labels['org.memu.service'] ?? c.Id, c]));
}
