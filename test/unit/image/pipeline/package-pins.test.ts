import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../hardware/index.ts';
import { computeLayout } from '../../../../image/disk/layout.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { preparePinnedPackages } from '../../../../image/pipeline/package-pins.ts';
import { rootfsPackages } from '../../../../image/pipeline/rootfs.ts';

/** The checks a pinned build makes of its input before it looks at any .deb. */
describe('pinning a build to an earlier manifest', () => {
  const profile = loadProfile('qemu-amd64');
  let dir: string;
  const manifest = (packages = rootfsPackages(profile).map((name) => ({ name, version: '1.0-1', arch: 'amd64' }))) => ({
    format: 'memu-image-manifest/1',
    product: 'memu-os',
    version: '0.1.0',
    profile: 'qemu-amd64',
    arch: 'amd64',
    sourceDateEpoch: 1767225600,
    rootfs: { key: 'k', suite: 'trixie', mirror: 'http://deb.debian.org/debian' },
    kernel: '6.12.1',
    agent: { version: '0.1.0', sha256: 'a'.repeat(64) },
    layout: computeLayout(profile, 'seed'),
    packages,
    containerImages: [],
    sizes: { imageBytes: 1, mappedBytes: 1, zstBytes: 1 },
    artifacts: [{ name: 'memu-qemu-amd64-0.1.0.img', role: 'image', sizeBytes: 1, sha256: 'b'.repeat(64) }],
  });
  const pin = async (content: unknown) => {
    const path = join(dir, 'manifest.json');
    await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
    try {
      await preparePinnedPackages({ manifestPath: path, profile, includePackages: rootfsPackages(profile), debCache: join(dir, 'debs'), workDir: join(dir, 'work'), log: createHostLogger({ json: true, level: 'silent' }) });
    } catch (err) {
      return err as MemuError;
    }
    throw new Error('expected the pin to be refused');
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-pins-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a file that is not an image manifest, saying why (exit 2)', async () => {
    let err = await pin('{ not json');
    expect(err).toBeInstanceOf(MemuError);
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/manifest\.json is not JSON/);
    err = await pin({ ...manifest(), packages: 'all of them' });
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/image manifest .*manifest\.json is invalid: packages: Expected array, received string/);
  });

  it('refuses a package set that lacks what the profile installs by name, naming it', async () => {
    const err = await pin(manifest(rootfsPackages(profile).filter((n) => n !== 'systemd-boot-efi').map((name) => ({ name, version: '1', arch: 'amd64' }))));
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toMatch(/the build installs systemd-boot-efi, which .* does not name/);
  });

  it('refuses packages of another architecture', async () => {
    const err = await pin(manifest([...rootfsPackages(profile).map((name) => ({ name, version: '1', arch: 'amd64' })), { name: 'libc6', version: '2.41-1', arch: 'i386' }]));
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toContain('names packages of another architecture: libc6=2.41-1 (i386)');
  });

  it('touches neither the deb cache nor the work directory when it refuses', async () => {
    await pin({ ...manifest(), arch: 'arm64' });
    expect((await readdir(dir)).sort()).toEqual(['manifest.json']);
  });
});
