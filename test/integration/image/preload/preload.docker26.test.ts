/**
 * The device runs Debian trixie's docker.io (26.x); the build host preloads with
 * bookworm's 20.10. This test proves the data-root formats agree: it takes trixie's
 * dockerd and containerd from the Debian archive (`aptDownload`: apt with a private
 * source list, so the host's apt setup is untouched; unpacked under the test cache dir),
 * starts them on data-roots preloaded here, and looks the images up and runs one.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORMS } from '../../../../shared/contracts/image-lock.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { preloadImages } from '../../../../image/preload/preload.ts';
import { startThrowawayDockerd } from '../../../../image/preload/throwaway-dockerd.ts';
import { aptDownload, pushTestImage, startTestRegistry, testCacheDir, type PushedTestImage, type TestRegistry } from '../../../helpers/oci-registry.ts';

const run = promisify(execFile);
const log = createHostLogger({ json: true, level: 'silent' });

/** trixie's dockerd and containerd binaries, unpacked from their .debs. */
async function trixieDocker(): Promise<{ dockerd: string; binDir: string }> {
  const root = join(testCacheDir(), 'trixie-docker');
  const result = { dockerd: join(root, 'usr', 'sbin', 'dockerd'), binDir: join(root, 'usr', 'bin') };
  if (existsSync(result.dockerd)) return result;
  const debs = await mkdtemp(join(tmpdir(), 'memu-trixie-debs-'));
  const tree = `${root}.tmp-${process.pid}`; // beside root, so the rename stays on one filesystem
  try {
    await rm(tree, { recursive: true, force: true });
    await mkdir(tree, { recursive: true });
    const files = await aptDownload(['docker.io', 'containerd'], { suite: 'trixie', arch: 'amd64', destDir: debs });
    for (const deb of files) await run('dpkg-deb', ['-x', deb, tree]);
    await rm(root, { recursive: true, force: true });
    await rename(tree, root);
  } finally {
    await rm(debs, { recursive: true, force: true });
    await rm(tree, { recursive: true, force: true });
  }
  return result;
}

let registry: TestRegistry;
let dir: string;
let hello: PushedTestImage;

beforeAll(async () => {
  registry = await startTestRegistry();
  dir = await mkdtemp(join(tmpdir(), 'memu-preload26-'));
  hello = await pushTestImage(registry, { repo: 'memutest/hello', tag: '1.0', platforms: ['linux/amd64', 'linux/arm64'], cmd: ['cat', '/etc/memu-test-image'] });
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("a data-root preloaded by Docker 20.10 under the device's Docker 26", () => {
  it('finds the images by tag and locked digest, and runs the amd64 one', async () => {
    const trixie = await trixieDocker();
    for (const platform of PLATFORMS) {
      await preloadImages({
        images: [{ service: 'hello', reference: 'memutest/hello:1.0', digest: hello.platforms[platform]!, indexDigest: hello.index }],
        platform,
        dataRoot: join(dir, platform.slice(6)),
        cacheDir: join(dir, 'cache'),
        registryMirrors: { 'docker.io': registry.host },
        log,
      });
    }
    await registry.stop();
    const savedPath = process.env.PATH;
    process.env.PATH = `${trixie.binDir}:${savedPath}`; // dockerd 26 starts trixie's containerd 1.7
    try {
      for (const platform of PLATFORMS) {
        const device = await startThrowawayDockerd({ dataRoot: join(dir, platform.slice(6)), log, dockerdPath: trixie.dockerd });
        const docker = async (...args: string[]) => (await run('docker', ['-H', device.host, ...args])).stdout.trim();
        try {
          expect(await docker('version', '--format', '{{.Server.Version}}')).toMatch(/^26\./);
          const pinned = `memutest/hello@${hello.platforms[platform]}`;
          const image = JSON.parse(await docker('image', 'inspect', pinned))[0];
          expect(`${image.Os}/${image.Architecture}`).toBe(platform);
          expect(image.RepoTags).toEqual(['memutest/hello:1.0']);
          expect(image.RepoDigests.sort()).toEqual([pinned, `memutest/hello@${hello.index}`].sort());
          if (platform === 'linux/amd64') expect(await docker('run', '--rm', '--network', 'none', pinned)).toBe('memutest/hello:1.0 linux/amd64');
        } finally {
          await device.stop();
        }
      }
    } finally {
      process.env.PATH = savedPath;
    }
  });
});
