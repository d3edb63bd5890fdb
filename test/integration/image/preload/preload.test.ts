import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedReference, PLATFORMS, type ImageLock, type Platform } from '../../../../shared/contracts/image-lock.ts';
import { ExitCode } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { exportImageArchives, preloadImages, type PreloadImage, type PreloadResult } from '../../../../image/preload/preload.ts';
import { startThrowawayDockerd } from '../../../../image/preload/throwaway-dockerd.ts';
import { resolveStackLock } from '../../../../image/stack/lock.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';
import { pushTestImage, serveRegistryInNamespace, startTestRegistry, tamperBlob, type PushedTestImage, type TestRegistry } from '../../../helpers/oci-registry.ts';

const run = promisify(execFile);
const log = createHostLogger({ json: true, level: 'silent' });
const SERVICES = [
  { service: 'hello', reference: 'memutest/hello:1.0' },
  { service: 'web', reference: 'ghcr.io/memutest/web:2' },
];

let registry: TestRegistry;
let mirrors: Record<string, string>;
let dir: string;
let lock: ImageLock;
let hello: PushedTestImage;
let next: PushedTestImage;

function imagesFor(platform: Platform): PreloadImage[] {
  return SERVICES.map(({ service, reference }) => ({
    service,
    reference,
    digest: lock.images[reference]!.platforms[platform]!,
    indexDigest: lock.images[reference]!.index,
  }));
}

async function docker(host: string, ...args: string[]): Promise<string> {
  return (await run('docker', ['-H', host, ...args])).stdout.trim();
}

beforeAll(async () => {
  registry = await startTestRegistry();
  dir = await mkdtemp(join(tmpdir(), 'memu-preload-it-'));
  // Docker Hub and ghcr.io both come from the local registry, ghcr.io under a path prefix.
  mirrors = { 'docker.io': registry.host, 'ghcr.io': `${registry.host}/ghcr` };
  hello = await pushTestImage(registry, { repo: 'memutest/hello', tag: '1.0', platforms: ['linux/amd64', 'linux/arm64'], cmd: ['echo', 'hello from the preloaded image'] });
  await pushTestImage(registry, {
    repo: 'ghcr/memutest/web',
    tag: '2',
    platforms: ['linux/amd64', 'linux/arm64'],
    mediaTypes: 'docker',
    cmd: ['httpd', '-f'],
    healthcheck: { test: ['CMD', 'true'], intervalSeconds: 7 },
  });
  next = await pushTestImage(registry, { repo: 'memutest/next', tag: '3', platforms: ['linux/amd64'] });
  lock = await resolveStackLock({ images: SERVICES, platforms: [...PLATFORMS], registryMirrors: mirrors, cacheDir: join(dir, 'lock-cache'), log });
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('preloadImages (real registry, real dockerd)', () => {
  it("leaves the host's Docker network alone: its docker0 bridge survives a throwaway dockerd", async () => {
    const before = await readdir('/sys/class/net');
    if (!prerequisite("the host engine's default bridge (docker0; start dockerd)", before.includes('docker0'))) return;
    const throwaway = await startThrowawayDockerd({ dataRoot: join(dir, 'network-check'), log });
    await throwaway.stop();
    expect(await readdir('/sys/class/net')).toContain('docker0');
  });

  it('refuses a layer whose content does not match its digest, naming service and image', async () => {
    const victim = await pushTestImage(registry, { repo: 'memutest/victim', tag: '1', platforms: ['linux/amd64'] });
    await tamperBlob(registry, victim.layers['linux/amd64']![1]!);
    const err = await preloadImages({
      images: [{ service: 'victim', reference: 'memutest/victim:1', digest: victim.platforms['linux/amd64']! }],
      platform: 'linux/amd64',
      dataRoot: join(dir, 'victim-root'),
      cacheDir: join(dir, 'victim-cache'),
      registryMirrors: mirrors,
      log,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      exitCode: ExitCode.verifyFailed,
      message: expect.stringMatching(/^service victim: image memutest\/victim:1 \(linux\/amd64 sha256:[0-9a-f]{64}\): digest mismatch for blob/),
    });
    // The bad blob was not kept: a cache entry always matches its digest.
    expect(await readdir(join(dir, 'victim-cache', 'sha256'))).not.toContain(victim.layers['linux/amd64']![1]!.slice(7));
  });

  const first: Partial<Record<Platform, PreloadResult>> = {};
  it('preloads both platforms, and a rebuild with the registry stopped downloads nothing', async () => {
    const cacheDir = join(dir, 'cache');
    for (const platform of PLATFORMS) {
      first[platform] = await preloadImages({ images: imagesFor(platform), platform, dataRoot: join(dir, `first-${platform.slice(6)}`), cacheDir, registryMirrors: mirrors, log });
      expect(first[platform]!.downloadedBytes).toBeGreaterThan(first[platform]!.compressedLayerBytes - 1);
    }
    // Like a pulled image, a preloaded one tells dockerd which registry blobs it holds,
    // so a later pull (a field update) skips the layers the device already has.
    const updater = await startThrowawayDockerd({ dataRoot: join(dir, 'first-amd64'), log });
    // The throwaway daemon has a network namespace of its own; the registry is served into it.
    const stopRegistryCopy = await serveRegistryInNamespace(registry, updater.networkNamespace);
    try {
      const pull = await docker(updater.host, 'pull', `${registry.host}/memutest/next:3`);
      const base = next.layers['linux/amd64']![0]!;
      expect(base).toBe(hello.layers['linux/amd64']![0]);
      expect(pull).toContain(`${base.slice(7, 19)}: Already exists`);
      expect(pull).toContain(`${next.layers['linux/amd64']![1]!.slice(7, 19)}: Pull complete`);
    } finally {
      await stopRegistryCopy();
      await updater.stop();
    }

    await registry.stop();
    for (const platform of PLATFORMS) {
      const again = await preloadImages({ images: imagesFor(platform), platform, dataRoot: join(dir, `device-${platform.slice(6)}`), cacheDir, registryMirrors: mirrors, log });
      expect(again.downloadedBytes).toBe(0);
      expect(again.images.map((i) => i.imageId)).toEqual(first[platform]!.images.map((i) => i.imageId));
      expect(again.uncompressedLayerBytes).toBeGreaterThan(again.compressedLayerBytes);
      expect(again.estimatedPartitionBytes).toBe(Math.ceil(again.uncompressedLayerBytes * 1.4));
      expect(again.dataRootBytes).toBeGreaterThan(again.compressedLayerBytes);
    }
  });

  it("leaves a data-root the device's dockerd uses offline: original tags, locked digests, runnable amd64 image", async () => {
    for (const platform of PLATFORMS) {
      const dataRoot = join(dir, `device-${platform.slice(6)}`);
      // Only images and layers: the device's daemon makes its own runtime state.
      expect((await readdir(dataRoot)).sort()).toEqual(['image', 'overlay2']);
      const device = await startThrowawayDockerd({ dataRoot, log });
      try {
        for (const { reference } of SERVICES) {
          const pinned = pinnedReference(lock, reference, platform);
          const byTag = JSON.parse(await docker(device.host, 'image', 'inspect', reference))[0];
          const byDigest = JSON.parse(await docker(device.host, 'image', 'inspect', pinned))[0];
          expect(byDigest.Id).toBe(byTag.Id);
          expect(`${byTag.Os}/${byTag.Architecture}`).toBe(platform);
          expect(byTag.RepoTags).toEqual([reference]);
          expect(byTag.RepoDigests).toContain(pinned);
        }
        // Fully qualified names (as compose files may write them) resolve to the same images.
        expect(await docker(device.host, 'image', 'inspect', '--format', '{{.Id}}', 'docker.io/memutest/hello:1.0')).toBe(
          await docker(device.host, 'image', 'inspect', '--format', '{{.Id}}', 'memutest/hello:1.0'),
        );
        const health = await docker(device.host, 'image', 'inspect', '--format', '{{json .Config.Healthcheck}}', 'ghcr.io/memutest/web:2');
        expect(JSON.parse(health)).toMatchObject({ Test: ['CMD', 'true'], Interval: 7e9 });
        if (platform === 'linux/amd64') {
          const out = await docker(device.host, 'run', '--rm', '--network', 'none', pinnedReference(lock, 'memutest/hello:1.0', platform));
          expect(out).toBe('hello from the preloaded image');
        }
      } finally {
        await device.stop();
      }
    }
  });

  it('refuses a digest for another platform and a data-root that is not empty', async () => {
    const common = { cacheDir: join(dir, 'cache'), registryMirrors: mirrors, log };
    const wrong = imagesFor('linux/arm64').slice(0, 1);
    await expect(preloadImages({ ...common, images: wrong, platform: 'linux/amd64', dataRoot: join(dir, 'wrong-platform') })).rejects.toMatchObject({
      exitCode: ExitCode.badInput,
      message: `service hello: image memutest/hello:1.0: digest ${wrong[0]!.digest} is a linux/arm64 image, not linux/amd64`,
    });
    await expect(preloadImages({ ...common, images: imagesFor('linux/amd64'), platform: 'linux/amd64', dataRoot: join(dir, 'device-amd64') })).rejects.toThrow(
      /data-root .*device-amd64 is not empty/,
    );
  });

  it('exports a reproducible docker-load archive from the cache alone (registry still stopped)', async () => {
    const common = { images: imagesFor('linux/arm64'), platform: 'linux/arm64' as const, cacheDir: join(dir, 'cache'), registryMirrors: mirrors, log };
    const a = await exportImageArchives({ ...common, outFile: join(dir, 'out', 'a.tar') });
    const b = await exportImageArchives({ ...common, outFile: join(dir, 'out', 'b.tar') });
    const sha = async (p: string) => createHash('sha256').update(await readFile(p)).digest('hex');
    expect(a.downloadedBytes).toBe(0);
    expect(await sha(a.path)).toBe(await sha(b.path));
    const daemon = await startThrowawayDockerd({ dataRoot: join(dir, 'archive-root'), log });
    try {
      const out = await docker(daemon.host, 'load', '-i', a.path);
      expect(out).toContain('Loaded image: memutest/hello:1.0');
      expect(out).toContain('Loaded image: ghcr.io/memutest/web:2');
      expect(await docker(daemon.host, 'image', 'inspect', '--format', '{{.Id}} {{.Architecture}}', 'ghcr.io/memutest/web:2')).toBe(`${a.images[1]!.imageId} arm64`);
    } finally {
      await daemon.stop();
    }
  });
});
