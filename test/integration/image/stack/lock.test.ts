import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageLockSchema, pinnedReference } from '../../../../shared/contracts/image-lock.ts';
import { registerStack } from '../../../../image/cli/commands/stack.ts';
import { createCliContext } from '../../../../image/cli/command.ts';
import { cachePaths, memuCacheDir } from '../../../../image/host/cache-dir.ts';
import { defaultBuildConfig } from '../../../../image/pipeline/pipeline.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { stackFilesFromList } from '../../../../image/stack/device-stack-check.ts';
import { lockStack } from '../../../../image/stack/lock.ts';
import { pushTestImage, startTestRegistry, tamperBlob, type PushedTestImage, type TestRegistry } from '../../../helpers/oci-registry.ts';

const log = createHostLogger({ json: true, level: 'silent' });
let registry: TestRegistry;
let dir: string;
let hello: PushedTestImage;
let web: PushedTestImage;

beforeAll(async () => {
  registry = await startTestRegistry();
  dir = await mkdtemp(join(tmpdir(), 'memu-lock-it-'));
  hello = await pushTestImage(registry, { repo: 'memutest/hello', tag: '1.0', platforms: ['linux/amd64', 'linux/arm64'] });
  web = await pushTestImage(registry, { repo: 'memutest/web', tag: '2', platforms: ['linux/amd64', 'linux/arm64'], mediaTypes: 'docker' });
  await pushTestImage(registry, { repo: 'memutest/amd64-only', tag: '1', platforms: ['linux/amd64'] });
});
afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function compose(name: string, services: Record<string, string>): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `services:\n${Object.entries(services).map(([s, image]) => `  ${s}:\n    image: ${image}\n`).join('')}`);
  return path;
}

/** Runs `memu stack lock ARGS` through the real command registration; returns the exit code. */
async function memuStackLock(args: string[]): Promise<number> {
  const program = new Command('memu').exitOverride();
  let code = -1;
  registerStack(program, async (action) => {
    code = (await action(createCliContext({ json: true, logLevel: 'silent' }))).exitCode;
  });
  await program.parseAsync(['node', 'memu', 'stack', 'lock', ...args]);
  return code;
}

describe('memu stack lock (real registry)', () => {
  it('pins each compose image to its index and per-platform digests, keeping the original references', async () => {
    const file = await compose('stack.yml', { hello: 'memutest/hello:1.0', web: `${registry.host}/memutest/web:2`, again: 'memutest/hello:1.0' });
    const lockPath = join(dir, 'images.lock.json');
    const cacheDir = join(dir, 'prefetch-cache');
    const code = await memuStackLock(['--compose', file, '--lock', lockPath, '--registry-mirror', `docker.io=${registry.host}`, '--cache-dir', cacheDir, '--prefetch']);
    expect(code).toBe(ExitCode.ok);
    // --prefetch left every layer of every platform in the blob cache, for an offline build.
    const cached = await readdir(join(cacheDir, 'blobs', 'sha256'));
    for (const image of [hello, web]) for (const layers of Object.values(image.layers)) for (const l of layers) expect(cached).toContain(l.slice(7));
    const lock = imageLockSchema.parse(JSON.parse(await readFile(lockPath, 'utf8')));
    expect(lock.images).toEqual({
      [`${registry.host}/memutest/web:2`]: { index: web.index, platforms: web.platforms },
      'memutest/hello:1.0': { index: hello.index, platforms: hello.platforms },
    });
    expect(pinnedReference(lock, 'memutest/hello:1.0', 'linux/arm64')).toBe(`memutest/hello@${hello.platforms['linux/arm64']}`);
    // --check verifies coverage without contacting any registry.
    expect(await memuStackLock(['--compose', file, '--lock', lockPath, '--check'])).toBe(ExitCode.ok);
  });

  it('with MEMU_CACHE_DIR set, --prefetch fills the blob cache that memu build reads', async () => {
    const file = await compose('cache-env.yml', { hello: 'memutest/hello:1.0' });
    const cacheRoot = join(dir, 'memu-cache-env');
    const saved = process.env.MEMU_CACHE_DIR;
    process.env.MEMU_CACHE_DIR = cacheRoot;
    try {
      const code = await memuStackLock(['--compose', file, '--lock', join(dir, 'cache-env.lock.json'), '--registry-mirror', `docker.io=${registry.host}`, '--prefetch']);
      expect(code).toBe(ExitCode.ok);
      const build = await defaultBuildConfig(loadProfile('qemu-amd64'), { version: '0.0.0', sourceDateEpoch: 0 });
      expect(build.cacheDir).toBe(memuCacheDir());
      const cached = await readdir(join(cachePaths(build.cacheDir).blobs, 'sha256'));
      for (const l of hello.layers['linux/amd64']!) expect(cached).toContain(l.slice(7));
    } finally {
      if (saved === undefined) delete process.env.MEMU_CACHE_DIR;
      else process.env.MEMU_CACHE_DIR = saved;
    }
  });

  it('names the service and image when a platform is missing', async () => {
    const file = await compose('missing.yml', { hello: 'memutest/hello:1.0', tool: 'memutest/amd64-only:1' });
    const err = await lockStack({
      stackFiles: stackFilesFromList([file]),
      lockPath: join(dir, 'missing.lock.json'),
      platforms: ['linux/amd64', 'linux/arm64'],
      registryMirrors: { 'docker.io': registry.host },
      cacheDir: join(dir, 'cache'),
      log,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemuError);
    expect(err).toMatchObject({ exitCode: ExitCode.badInput, message: 'service tool: image memutest/amd64-only:1 has no linux/arm64 image (it offers linux/amd64)' });
    // Nothing was written: a failed lock never leaves a half-written file.
    await expect(readFile(join(dir, 'missing.lock.json'))).rejects.toThrow(/ENOENT/);
    // The same image locks fine for the platform it has.
    const ok = await lockStack({ stackFiles: stackFilesFromList([file]), lockPath: join(dir, 'amd64.lock.json'), platforms: ['linux/amd64'], registryMirrors: { 'docker.io': registry.host }, cacheDir: join(dir, 'cache'), log });
    expect(Object.keys(ok.lock.images)).toHaveLength(2);
  });

  it('names the service and image when the registry is unreachable', async () => {
    const file = await compose('down.yml', { hello: 'memutest/hello:1.0' });
    const err = await lockStack({
      stackFiles: stackFilesFromList([file]),
      lockPath: join(dir, 'down.lock.json'),
      platforms: ['linux/amd64'],
      registryMirrors: { 'docker.io': '127.0.0.1:18399' },
      cacheDir: join(dir, 'cache'),
      log,
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      exitCode: ExitCode.environment,
      message: 'service hello: image memutest/hello:1.0: registry http://127.0.0.1:18399 unreachable: ECONNREFUSED (connection refused)',
    });
  });

  it('detects content that does not match its digest (a tampered blob in the registry storage)', async () => {
    const victim = await pushTestImage(registry, { repo: 'memutest/victim', tag: '1', platforms: ['linux/amd64', 'linux/arm64'] });
    await tamperBlob(registry, victim.configs['linux/arm64']!);
    const file = await compose('tampered.yml', { victim: `${registry.host}/memutest/victim:1` });
    const err = await lockStack({
      stackFiles: stackFilesFromList([file]),
      lockPath: join(dir, 'tampered.lock.json'),
      platforms: ['linux/amd64', 'linux/arm64'],
      cacheDir: join(dir, 'fresh-cache'),
      log,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemuError);
    expect((err as MemuError).exitCode).toBe(ExitCode.verifyFailed);
    expect((err as MemuError).message).toMatch(
      new RegExp(`^service victim: image ${registry.host.replace(/\./g, '\\.')}/memutest/victim:1: digest mismatch for blob ${victim.configs['linux/arm64']}`),
    );
  });
});
