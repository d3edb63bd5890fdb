import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IMAGE_LOCK_FORMAT, type ImageLock } from '../../../../shared/contracts/image-lock.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { checkImagesLocked, parsePlatforms, readImageLock, writeImageLock } from '../../../../image/stack/lock.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-stack-lock-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const lock: ImageLock = {
  format: IMAGE_LOCK_FORMAT,
  images: {
    'nginx:1.27': { index: d('a'), platforms: { 'linux/amd64': d('b'), 'linux/arm64': d('c') } },
    'ghcr.io/immich-app/immich-server:v1.119.0': { platforms: { 'linux/amd64': d('d') } },
  },
};

describe('checkImagesLocked', () => {
  it('passes when every image is locked for every wanted platform', () => {
    expect(() => checkImagesLocked([{ service: 'web', reference: 'nginx:1.27' }], lock, ['linux/amd64', 'linux/arm64'])).not.toThrow();
  });

  it('refuses a floating tag that is not in the lock, naming service and image', () => {
    let err: unknown;
    try {
      checkImagesLocked([{ service: 'web', reference: 'nginx:latest' }], lock);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(MemuError);
    expect(err).toMatchObject({ exitCode: ExitCode.badInput, message: 'service web: image nginx:latest is a floating tag not in the image lock' });
    expect((err as MemuError).hint).toMatch(/memu stack lock/);
  });

  it('refuses an image with no digest for a wanted platform, listing every problem', () => {
    expect(() =>
      checkImagesLocked(
        [
          { service: 'server', reference: 'ghcr.io/immich-app/immich-server:v1.119.0' },
          { service: 'ml', reference: 'ghcr.io/immich-app/immich-machine-learning:v1.119.0' },
        ],
        lock,
        ['linux/arm64'],
      ),
    ).toThrow(/2 images are not locked:\n  service server: image ghcr\.io\/immich-app\/immich-server:v1\.119\.0 has no linux\/arm64 digest[\s\S]*service ml:/);
  });
});

describe('lock file', () => {
  it('round-trips through an atomic write and rejects a malformed lock with a fix', async () => {
    const path = join(dir, 'images.lock.json');
    await writeImageLock(path, lock);
    expect(await readImageLock(path)).toEqual(lock);
    expect((await readFile(path, 'utf8')).endsWith('\n')).toBe(true);
    await writeFile(path, JSON.stringify({ format: IMAGE_LOCK_FORMAT, images: { x: { platforms: { 'linux/amd64': 'sha256:12' } } } }));
    await expect(readImageLock(path)).rejects.toThrow(/is invalid: images\.x\.platforms\.linux\/amd64/);
    await expect(readImageLock(join(dir, 'none.json'))).rejects.toThrow(/does not exist/);
  });
});

describe('parsePlatforms', () => {
  it('accepts the supported platforms only', () => {
    expect(parsePlatforms('linux/amd64, linux/arm64,linux/amd64')).toEqual(['linux/amd64', 'linux/arm64']);
    expect(() => parsePlatforms('linux/riscv64')).toThrow(/unsupported platform "linux\/riscv64"/);
  });
});
