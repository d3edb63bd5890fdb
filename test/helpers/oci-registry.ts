/**
 * A real OCI registry for tests (Debian's `docker-registry`, distribution 2.8) on
 * 127.0.0.1, and small multi-platform test images pushed to it straight through the
 * registry HTTP API — no dockerd needed. The images are built from Debian's
 * `busybox-static` binaries for amd64 and arm64 (cached under the test cache dir).
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile, open } from 'node:fs/promises';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { PrivateApt } from '../../image/pipeline/private-apt.ts';

const run = promisify(execFile);

/** Ports reserved for these tests: 18300–18399. The registry takes the first free one from 18300. */
export const TEST_PORT_RANGE = { first: 18300, last: 18399 } as const;

export interface TestRegistry {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `127.0.0.1:PORT`, usable as a registry name in references and as a mirror target. */
  host: string;
  /** The registry's storage root (for tests that tamper with blobs). */
  storageDir: string;
  stop(): Promise<void>;
}

export type TestPlatform = 'linux/amd64' | 'linux/arm64';

export interface PushTestImageOptions {
  repo: string;
  tag: string;
  platforms: TestPlatform[];
  cmd?: string[];
  healthcheck?: { test: string[]; intervalSeconds?: number; retries?: number };
  /** `oci` (default) or Docker schema 2 media types. */
  mediaTypes?: 'oci' | 'docker';
  /** Adds a layer holding this host directory's contents under `/payload` (benchmarks use it for size). */
  extraLayerDir?: string;
  /** Adds a layer holding this host directory's contents at `/` (a program and its libraries). */
  rootLayerDir?: string;
}

export interface PushedTestImage {
  /** Digest of the index (manifest list) the tag points at. */
  index: string;
  /** Per-platform manifest digests. */
  platforms: Partial<Record<TestPlatform, string>>;
  /** Per-platform config digests (= image IDs in dockerd). */
  configs: Partial<Record<TestPlatform, string>>;
  /** Per-platform layer digests, in order. */
  layers: Partial<Record<TestPlatform, string[]>>;
}

export function testCacheDir(): string {
  return process.env.MEMU_TEST_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'memu', 'test-fixtures');
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function waitForRegistry(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${log()}`);
    const ok = await fetch(`${url}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`docker-registry did not answer at ${url} within 20 s: ${log()}`);
}

/** Starts Debian's docker-registry on 127.0.0.1 with a fresh temporary storage dir. */
export async function startTestRegistry(opts: { port?: number } = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-registry-'));
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir);
  let port = opts.port;
  for (let p = TEST_PORT_RANGE.first; port === undefined && p <= TEST_PORT_RANGE.last; p++) if (await portIsFree(p)) port = p;
  if (port === undefined) throw new Error('no free port in 18300–18399 for the test registry');
  const host = `127.0.0.1:${port}`;
  const config = [
    'version: 0.1',
    'log: { level: error, accesslog: { disabled: true } }',
    'storage:',
    `  filesystem: { rootdirectory: ${JSON.stringify(storageDir)} }`,
    '  delete: { enabled: true }',
    'http:',
    `  addr: ${host}`,
    '  secret: memu-test-registry',
    '',
  ].join('\n');
  const configPath = join(dir, 'config.yml');
  await writeFile(configPath, config);
  const child = spawn('/usr/bin/docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const url = `http://${host}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitForRegistry(url, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, host, storageDir, stop };
}

/**
 * Serves `registry`'s storage a second time, at the same address inside another network
 * namespace (a throwaway dockerd's, which cannot see the host's 127.0.0.1). Brings that
 * namespace's loopback up. Returns a function that stops it.
 */
export async function serveRegistryInNamespace(registry: TestRegistry, networkNamespace: string): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-registry-ns-'));
  const configPath = join(dir, 'config.yml');
  await writeFile(
    configPath,
    ['version: 0.1', 'log: { level: error, accesslog: { disabled: true } }', 'storage:', `  filesystem: { rootdirectory: ${JSON.stringify(registry.storageDir)} }`, 'http:', `  addr: ${registry.host}`, '  secret: memu-test-registry', ''].join('\n'),
  );
  const inNamespace = (command: string[]) => ['--net=' + networkNamespace, '--', ...command];
  await run('nsenter', inNamespace(['ip', 'link', 'set', 'lo', 'up']));
  const child = spawn('nsenter', inNamespace(['/usr/bin/docker-registry', 'serve', configPath]), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const stop = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    }
    await rm(dir, { recursive: true, force: true });
  };
  for (let i = 0; ; i++) {
    const up = await run('nsenter', inNamespace(['curl', '-sf', '-o', '/dev/null', `${registry.url}/v2/`])).then(() => true, () => false);
    if (up) return stop;
    if (child.exitCode !== null || i > 100) {
      await stop();
      throw new Error(`docker-registry did not start in ${networkNamespace}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Path of a blob's (or manifest's) bytes in the registry's filesystem storage. */
export function registryBlobPath(registry: TestRegistry, digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return join(registry.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

/** Changes one byte of a stored blob, keeping its size and (for JSON) its validity. */
export async function tamperBlob(registry: TestRegistry, digest: string): Promise<void> {
  const path = registryBlobPath(registry, digest);
  const bytes = await readFile(path);
  const text = bytes.toString('latin1');
  // Swap the case of the first letter of a JSON string value (size and JSON validity stay), or flip the last byte.
  const m = /":\s*"[a-zA-Z]/.exec(text);
  if (m) {
    const at = m.index + m[0].length - 1;
    bytes[at] = bytes[at]! ^ 0x20;
  } else {
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
  }
  const fd = await open(path, 'r+');
  try {
    await fd.write(bytes, 0, bytes.length, 0);
  } finally {
    await fd.close();
  }
}

// ---- test images ---------------------------------------------------------------

const DEB_ARCH: Record<TestPlatform, string> = { 'linux/amd64': 'amd64', 'linux/arm64': 'arm64' };
const BUSYBOX_APPLETS = ['sh', 'ls', 'cat', 'echo', 'sleep', 'true', 'false', 'wget', 'httpd', 'uname', 'test', 'env', 'id'];

/**
 * Downloads Debian packages (`.deb`s) for any suite and architecture with the pipeline's
 * private apt (its own source list and state directory): the host's apt configuration
 * (and its list of foreign architectures) stays untouched.
 */
export async function aptDownload(packages: string[], opts: { suite: string; arch: string; destDir: string }): Promise<string[]> {
  const source = { uri: 'http://deb.debian.org/debian', suites: [opts.suite], components: ['main'], signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' };
  const apt = await PrivateApt.open([source], opts.arch, tmpdir());
  try {
    await apt.update();
    return await apt.download(packages, opts.destDir);
  } finally {
    await apt.close();
  }
}

async function busyboxDeb(arch: string): Promise<string> {
  const debs = join(testCacheDir(), 'debs');
  await mkdir(debs, { recursive: true });
  const cached = (await readdir(debs)).find((f) => f.startsWith('busybox-static_') && f.endsWith(`_${arch}.deb`));
  if (cached) return join(debs, cached);
  const [deb] = await aptDownload(['busybox-static'], { suite: 'bookworm', arch, destDir: debs });
  if (!deb) throw new Error(`apt-get download busybox-static (${arch}) produced no .deb in ${debs}`);
  return deb;
}

/** A root filesystem with /bin/busybox for the platform and applet links. */
async function busyboxRootfs(platform: TestPlatform): Promise<string> {
  const arch = DEB_ARCH[platform];
  const root = join(testCacheDir(), `busybox-rootfs-${arch}`);
  if (existsSync(join(root, 'bin', 'busybox'))) return root;
  const unpack = await mkdtemp(join(tmpdir(), 'memu-busybox-'));
  try {
    await run('dpkg-deb', ['-x', await busyboxDeb(arch), unpack]);
    const staging = `${root}.tmp-${process.pid}`;
    await rm(staging, { recursive: true, force: true });
    await mkdir(join(staging, 'bin'), { recursive: true });
    await mkdir(join(staging, 'tmp'), { recursive: true });
    await run('cp', [join(unpack, 'bin', 'busybox'), join(staging, 'bin', 'busybox')]);
    for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(staging, 'bin', applet));
    await rm(root, { recursive: true, force: true });
    await run('mv', [staging, root]);
  } finally {
    await rm(unpack, { recursive: true, force: true });
  }
  return root;
}

/** A reproducible tar of a directory (sorted, owner 0, mtime 0). */
async function tarDirectory(dir: string, prefix = '.'): Promise<Buffer> {
  const { stdout } = await run(
    'tar',
    ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', dir, '-cf', '-', ...(prefix === '.' ? ['.'] : [prefix])],
    { encoding: 'buffer', maxBuffer: 4 * 1024 * 1024 * 1024 },
  );
  return stdout;
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}
function blob(bytes: Buffer): Blob {
  return { digest: sha256(bytes), size: bytes.length, bytes };
}

async function pushBlob(registry: TestRegistry, repo: string, b: Blob): Promise<void> {
  const head = await fetch(`${registry.url}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' });
  if (head.ok) return;
  const start = await fetch(`${registry.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  await start.body?.cancel();
  if (start.status !== 202) throw new Error(`registry refused an upload for ${repo}: HTTP ${start.status}`);
  const location = new URL(start.headers.get('location')!, registry.url);
  location.searchParams.set('digest', b.digest);
  const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(b.bytes) });
  if (put.status !== 201) throw new Error(`upload of ${b.digest} to ${repo} failed: HTTP ${put.status} ${await put.text()}`);
}

async function putManifest(registry: TestRegistry, repo: string, reference: string, mediaType: string, bytes: Buffer): Promise<void> {
  const res = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': mediaType },
    body: new Uint8Array(bytes),
  });
  if (res.status !== 201) throw new Error(`manifest PUT ${repo}:${reference} failed: HTTP ${res.status} ${await res.text()}`);
}

/**
 * Pushes `repo:tag` as a multi-platform image. Each platform gets two layers: the
 * busybox root filesystem (shared by every test image of that platform) and a small
 * layer naming the image (`/etc/memu-test-image`), plus the optional payload layer.
 */
export async function pushTestImage(registry: Pick<TestRegistry, 'url'>, opts: PushTestImageOptions): Promise<PushedTestImage> {
  const reg = registry as TestRegistry;
  const docker = opts.mediaTypes === 'docker';
  const types = docker
    ? {
        index: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifest: 'application/vnd.docker.distribution.manifest.v2+json',
        config: 'application/vnd.docker.container.image.v1+json',
        layer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      }
    : {
        index: 'application/vnd.oci.image.index.v1+json',
        manifest: 'application/vnd.oci.image.manifest.v1+json',
        config: 'application/vnd.oci.image.config.v1+json',
        layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
      };
  const result: PushedTestImage = { index: '', platforms: {}, configs: {}, layers: {} };
  const indexEntries: unknown[] = [];
  for (const platform of opts.platforms) {
    const arch = DEB_ARCH[platform];
    const tars: Buffer[] = [await tarDirectory(await busyboxRootfs(platform))];
    const marker = await mkdtemp(join(tmpdir(), 'memu-marker-'));
    try {
      await mkdir(join(marker, 'etc'));
      await writeFile(join(marker, 'etc', 'memu-test-image'), `${opts.repo}:${opts.tag} ${platform}\n`);
      tars.push(await tarDirectory(marker));
      if (opts.extraLayerDir) {
        const { stdout } = await run(
          'tar',
          ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', opts.extraLayerDir, '--transform', 's,^\\.,payload,', '-cf', '-', '.'],
          { encoding: 'buffer', maxBuffer: 4 * 1024 * 1024 * 1024 },
        );
        tars.push(stdout);
      }
      if (opts.rootLayerDir) tars.push(await tarDirectory(opts.rootLayerDir));
    } finally {
      await rm(marker, { recursive: true, force: true });
    }
    const layers = tars.map((t) => ({ ...blob(gzipSync(t)), diffId: sha256(t) }));
    const config: Record<string, unknown> = {
      architecture: arch,
      os: 'linux',
      ...(arch === 'arm64' ? { variant: 'v8' } : {}),
      created: '1970-01-01T00:00:00Z',
      config: {
        Env: ['PATH=/bin'],
        Cmd: opts.cmd ?? ['sh', '-c', 'echo hello from memu test image'],
        ...(opts.healthcheck
          ? {
              Healthcheck: {
                Test: opts.healthcheck.test,
                Interval: (opts.healthcheck.intervalSeconds ?? 5) * 1e9,
                Retries: opts.healthcheck.retries ?? 3,
              },
            }
          : {}),
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created: '1970-01-01T00:00:00Z', created_by: 'memu test image' })),
    };
    const configBlob = blob(Buffer.from(JSON.stringify(config)));
    for (const l of layers) await pushBlob(reg, opts.repo, l);
    await pushBlob(reg, opts.repo, configBlob);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.manifest,
        config: { mediaType: types.config, digest: configBlob.digest, size: configBlob.size },
        layers: layers.map((l) => ({ mediaType: types.layer, digest: l.digest, size: l.size })),
      }),
    );
    const manifestDigest = sha256(manifest);
    await putManifest(reg, opts.repo, manifestDigest, types.manifest, manifest);
    result.platforms[platform] = manifestDigest;
    result.configs[platform] = configBlob.digest;
    result.layers[platform] = layers.map((l) => l.digest);
    indexEntries.push({
      mediaType: types.manifest,
      digest: manifestDigest,
      size: manifest.length,
      platform: { architecture: arch, os: 'linux', ...(arch === 'arm64' ? { variant: 'v8' } : {}) },
    });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: types.index, manifests: indexEntries }));
  await putManifest(reg, opts.repo, opts.tag, types.index, index);
  result.index = sha256(index);
  return result;
}
