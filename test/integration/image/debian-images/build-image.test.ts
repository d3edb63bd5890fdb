/**
 * `memu image build` end to end: front and valkey built from Debian's trixie packages for
 * linux/amd64 and linux/arm64 (the .debs and resolved package sets are cached in the
 * tests' cache dir, so a rerun needs no network), built twice to the same digests,
 * pushed to a real registry (Debian's docker-registry), pinned by `memu stack lock`,
 * pulled by the real dockerd and run: the amd64 front door answers its healthcheck,
 * proxies /admin/ to a server on the host (host.docker.internal:host-gateway) and / to
 * a `web` container; valkey answers PING with PONG. The arm64 images run under qemu-user.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltImage } from '../../../../image/debian-images/build-image.ts';
import { PACKAGES_LIST_PATH } from '../../../../image/debian-images/definition.ts';
import { imageLockSchema } from '../../../../shared/contracts/image-lock.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';
import { pushTestImage, startTestRegistry, type TestRegistry } from '../../../helpers/oci-registry.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';

const run = promisify(execFile);
const docker = async (...args: string[]) => (await run('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
const hasDocker = prerequisite('dockerd (docker info)', await docker('info', '--format', '{{.ServerVersion}}').then(() => true, () => false));
const hasArm64Emulation = prerequisite('qemu-user for arm64 (binfmt_misc qemu-aarch64, scripts/setup-host)', existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64'));

const PLATFORMS = 'linux/amd64,linux/arm64';
/** The agent's port in the front door's configuration (host.docker.internal:8080). */
const AGENT_PORT = 8080;
const RUN_LABEL = 'org.memu.test=debian-images';

type Built = BuiltImage & { type: 'result'; ok: boolean };

async function build(definition: string, out: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Built> {
  const r = await runMemu(['--json', 'image', 'build', definition, '--platform', PLATFORMS, '--out', out, ...extra], { env });
  if (r.code !== 0) throw new Error(`memu image build ${definition} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
  return commandResult<BuiltImage>(r);
}

const manifestOf = (b: BuiltImage, platform: string) => b.platforms.find((p) => p.platform === platform)!.manifest;

async function waitHealthy(container: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await docker('inspect', '-f', '{{.State.Health.Status}}', container);
    if (status === 'healthy') return;
    if (Date.now() > deadline) throw new Error(`${container} is ${status} after ${timeoutMs / 1000} s:\n${await docker('logs', container).catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe.skipIf(!hasDocker)('memu image build (Debian archive, real registry, real dockerd)', () => {
  let work: string;
  let registry: TestRegistry;
  const first: Record<string, Built> = {};
  const second: Record<string, Built> = {};
  const ref = (definition: string) => `${registry.host}/memu-test/${definition}:it`;
  /** The image for one platform, by its manifest digest (a tag would follow the last platform pulled). */
  const pinned = (definition: string, platform: string) => `${registry.host}/memu-test/${definition}@${manifestOf(first[definition]!, platform)}`;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'memu-debian-images-'));
    registry = await startTestRegistry();
    for (const definition of ['front', 'valkey']) {
      const started = Date.now();
      first[definition] = await build(definition, join(work, definition, 'first'), ['--push', ref(definition)]);
      console.log(`${definition}: built and pushed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
  });
  afterAll(async () => {
    const containers = await docker('ps', '-aq', '--filter', `label=${RUN_LABEL}`).catch(() => '');
    if (containers) await docker('rm', '-f', ...containers.split('\n')).catch(() => undefined);
    await docker('network', 'rm', 'memu-debian-images-it').catch(() => undefined);
    const images = await docker('images', '-q', '--filter', `reference=${registry?.host}/memu-test/*`).catch(() => '');
    if (images) await docker('rmi', '-f', ...new Set(images.split('\n'))).catch(() => undefined);
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds both images for amd64 and arm64 from Debian packages, with the package versions recorded in them', async () => {
    for (const [definition, program] of [
      ['front', 'nginx'],
      ['valkey', 'valkey-server'],
    ] as const) {
      const b = first[definition]!;
      expect(b.platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
      for (const p of b.platforms) {
        expect(p.packages.map((x) => x.name)).toEqual(expect.arrayContaining(['base-files', 'libc6', program]));
        // What maintainer scripts alone need is left out.
        expect(p.packages.map((x) => x.name)).not.toEqual(expect.arrayContaining(['debconf']));
        expect(p.packages.map((x) => x.name).some((n) => ['debconf', 'adduser', 'iproute2', 'perl-base', 'init-system-helpers'].includes(n))).toBe(false);
        expect(p.layers).toHaveLength(2);
        const config = JSON.parse(await readFile(join(b.layout, 'blobs', 'sha256', p.config.slice(7)), 'utf8')) as { architecture: string; config: { Labels: Record<string, string> } };
        expect(config.architecture).toBe(p.platform.split('/')[1]);
        const version = p.packages.find((x) => x.name === program)!.version;
        expect(config.config.Labels['org.memu.debian.packages']).toContain(`${program}=${version}`);
        // The definition layer carries the list: name, version and architecture of every package.
        const { stdout } = await run('tar', ['-xzOf', join(b.layout, 'blobs', 'sha256', p.layers[1]!.digest.slice(7)), PACKAGES_LIST_PATH.slice(1)]);
        expect(stdout).toBe(p.packages.map((x) => `${x.name} ${x.version} ${x.arch}\n`).join(''));
      }
    }
  });

  it('gives the same digests when built again from the same package versions and SOURCE_DATE_EPOCH, and other ones with another epoch', async () => {
    for (const definition of ['front', 'valkey']) {
      const started = Date.now();
      second[definition] = await build(definition, join(work, definition, 'second'));
      console.log(`${definition}: rebuilt (.debs cached) in ${((Date.now() - started) / 1000).toFixed(1)} s, index ${second[definition]!.index}`);
      expect(second[definition]!.platforms.every((p) => p.packagesFrom === 'recorded')).toBe(true);
      expect(second[definition]!.index).toBe(first[definition]!.index);
      for (const platform of ['linux/amd64', 'linux/arm64']) expect(manifestOf(second[definition]!, platform)).toBe(manifestOf(first[definition]!, platform));
      // Byte for byte, every blob of the layout.
      const blobs = async (b: BuiltImage) => (await readdir(join(b.layout, 'blobs', 'sha256'))).sort();
      expect(await blobs(second[definition]!)).toEqual(await blobs(first[definition]!));
    }
    const later = await build('front', join(work, 'front', 'later'), [], { SOURCE_DATE_EPOCH: String(1767225600 + 86400) });
    expect(later.index).not.toBe(first.front!.index);
  });

  it('pushes an index that `memu stack lock` pins for both platforms', async () => {
    const compose = join(work, 'stack.yml');
    await writeFile(compose, `services:\n  front:\n    image: ${ref('front')}\n  cache:\n    image: ${ref('valkey')}\n`);
    const lockPath = join(work, 'images.lock.json');
    const r = await runMemu(['--json', 'stack', 'lock', '--compose', compose, '--lock', lockPath, '--platform', PLATFORMS]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const lock = imageLockSchema.parse(JSON.parse(await readFile(lockPath, 'utf8')));
    for (const definition of ['front', 'valkey']) {
      const b = first[definition]!;
      expect(b.pushed?.digest).toBe(b.index);
      expect(lock.images[ref(definition)]).toMatchObject({ index: b.index, platforms: { 'linux/amd64': manifestOf(b, 'linux/amd64'), 'linux/arm64': manifestOf(b, 'linux/arm64') } });
    }
  });

  it('refuses a bad push reference before building (exit 2), and says so when the registry cannot be reached (exit 3)', async () => {
    const bad = await runMemu(['--json', 'image', 'build', 'front', '--out', join(work, 'bad'), '--push', '127.0.0.1:5000/memu/front']);
    expect(bad.code).toBe(2);
    expect(commandResult(bad)).toMatchObject({ ok: false, error: expect.stringContaining('name a tag to push to') });
    const unreachable = await runMemu(['--json', 'image', 'build', 'front', '--platform', 'linux/amd64', '--out', join(work, 'unreachable'), '--push', '127.0.0.1:1/memu-test/front:1']);
    expect(unreachable.code).toBe(3);
    expect(commandResult(unreachable)).toMatchObject({ ok: false, error: expect.stringContaining('registry http://127.0.0.1:1 unreachable') });
  });

  describe('run by the real dockerd (amd64)', () => {
    let agent: Server;
    const agentSaw: { url?: string; headers?: IncomingHttpHeaders }[] = [];
    let setupFinished = false;

    beforeAll(async () => {
      await docker('network', 'create', '--label', RUN_LABEL, 'memu-debian-images-it');
      // The agent stand-in listens where host.docker.internal:host-gateway leads: the default bridge's gateway.
      const gateway = await docker('network', 'inspect', 'bridge', '-f', '{{(index .IPAM.Config 0).Gateway}}');
      agent = createServer((req, res) => {
        agentSaw.push({ url: req.url, headers: req.headers });
        // As the agent answers it: 204 once setup is finished, 401 before.
        if (req.url === '/admin/setup/state') return res.writeHead(setupFinished ? 204 : 401).end();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ agent: 'stand-in', path: req.url }));
      });
      await new Promise<void>((resolve, reject) => agent.once('error', reject).listen(AGENT_PORT, gateway, () => resolve()));
    });
    afterAll(async () => {
      await new Promise((r) => agent?.close(r));
    });

    it('front: healthy by its own healthcheck, runs as www-data, proxies /admin/ to the agent on the host and / to the stack\'s web service, the wizard first for browsers', async () => {
      await pushTestImage(registry, { repo: 'memu-test/web', tag: 'it', platforms: ['linux/amd64'] });
      await docker('run', '-d', '--label', RUN_LABEL, '--name', 'memu-it-web', '--network', 'memu-debian-images-it', '--network-alias', 'web', `${registry.host}/memu-test/web:it`, 'sh', '-c', 'busybox mkdir -p /www && echo web-ok > /www/index.html && exec httpd -f -p 8082 -h /www');
      await docker('run', '-d', '--label', RUN_LABEL, '--name', 'memu-it-front', '--network', 'memu-debian-images-it', '--add-host', 'host.docker.internal:host-gateway', '--health-interval', '1s', '-p', '127.0.0.1::80', pinned('front', 'linux/amd64'));
      await waitHealthy('memu-it-front');
      const port = (await docker('port', 'memu-it-front', '80/tcp')).split('\n')[0]!.split(':').at(-1);
      const base = `http://127.0.0.1:${port}`;
      expect(await docker('exec', 'memu-it-front', 'busybox', 'id', '-u')).toBe('33');

      const admin = await fetch(`${base}/admin/api/health`);
      expect(admin.status).toBe(200);
      expect(await admin.json()).toEqual({ agent: 'stand-in', path: '/admin/api/health' });
      expect(agentSaw.at(-1)!.headers).toMatchObject({ host: '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-for': expect.any(String) });
      // A relative redirect: the published port is not the container's 80.
      const redirect = await fetch(`${base}/admin`, { redirect: 'manual' });
      expect([redirect.status, redirect.headers.get('location')]).toEqual([301, '/admin/']);
      expect((await (await fetch(`${base}/`)).text()).trim()).toBe('web-ok');

      // A browser's front page is the setup wizard until the agent says setup is finished.
      const asPage = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
      const before = await fetch(`${base}/`, { headers: asPage, redirect: 'manual' });
      expect([before.status, before.headers.get('location')]).toEqual([302, '/admin/setup']);
      setupFinished = true;
      expect((await (await fetch(`${base}/`, { headers: asPage })).text()).trim()).toBe('web-ok');

      // web gone: the front door stays up and says the box is starting, to scripts and to people.
      await docker('rm', '-f', 'memu-it-web');
      for (const headers of [{}, asPage]) {
        const asked = Date.now();
        const down = await fetch(`${base}/`, { headers });
        expect(Date.now() - asked).toBeLessThan(10_000);
        expect(down.status).toBe(503);
        expect(down.headers.get('retry-after')).toBe('10');
        expect(await down.text()).toContain('Memu is starting up');
      }
    });

    it('valkey: healthy by its own healthcheck, runs as valkey, answers PING with PONG', async () => {
      await docker('run', '-d', '--label', RUN_LABEL, '--name', 'memu-it-valkey', '--health-interval', '1s', '-p', '127.0.0.1::6379', pinned('valkey', 'linux/amd64'));
      await waitHealthy('memu-it-valkey');
      expect(await docker('exec', 'memu-it-valkey', 'valkey-cli', 'ping')).toBe('PONG');
      expect(await docker('inspect', '-f', '{{.Config.User}}', 'memu-it-valkey')).toBe('999:999');
      const port = Number((await docker('port', 'memu-it-valkey', '6379/tcp')).split('\n')[0]!.split(':').at(-1));
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
        socket.once('data', (d) => {
          resolve(d.toString());
          socket.end();
        });
        socket.once('error', reject);
      });
      expect(reply).toBe('+PONG\r\n');
    });
  });

  it.skipIf(!hasArm64Emulation)('the arm64 images run under qemu-user: valkey-server and nginx start and read their configuration', async () => {
    expect(await docker('run', '--rm', '--label', RUN_LABEL, '--platform', 'linux/arm64', '--entrypoint', '/usr/bin/valkey-server', pinned('valkey', 'linux/arm64'), '--version')).toMatch(/^Valkey server v=8\./);
    const nginx = await run('docker', ['run', '--rm', '--label', RUN_LABEL, '--platform', 'linux/arm64', '--add-host', 'host.docker.internal:host-gateway', '--entrypoint', '/usr/sbin/nginx', pinned('front', 'linux/arm64'), '-t']);
    expect(nginx.stderr).toContain('configuration file /etc/nginx/nginx.conf test is successful');
    expect(await docker('run', '--rm', '--label', RUN_LABEL, '--platform', 'linux/arm64', '--entrypoint', 'busybox', pinned('front', 'linux/arm64'), 'uname', '-m')).toBe('aarch64');
  });
});
