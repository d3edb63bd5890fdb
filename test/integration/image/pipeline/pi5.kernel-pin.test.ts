/**
 * The Pi 5's kernel is pinned by version from trixie-backports, whose archive keeps only the
 * newest few kernels: against the real archive, the pin is found, and a version the archive
 * does not have stops `memu build` within seconds, before mmdebstrap, naming the current one.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile, validateProfile, type HardwareProfile } from '../../../../hardware/index.ts';
import { pi5 as pi5Input } from '../../../../hardware/profiles/pi5.ts';
import { PI5_KERNEL } from '../../../../hardware/profiles/pi5.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { createProgress } from '../../../../image/host/progress.ts';
import { buildImage, defaultBuildConfig } from '../../../../image/pipeline/pipeline.ts';
import { checkPinnedKernel, includeSpecs, mmdebstrapArgs, rootfsKey } from '../../../../image/pipeline/rootfs.ts';
import { debianArchiveReachable, prerequisite } from '../../../helpers/prerequisites.ts';

const hasArchive = prerequisite('the Debian archive (http://deb.debian.org)', await debianArchiveReachable('trixie-backports'));

describe('the pinned trixie-backports kernel', () => {
  let work: string;
  const log = createHostLogger({ json: true, level: 'error' });
  const pi5 = loadProfile('pi5');
  const withKernelVersion = (version: string): HardwareProfile => ({ ...pi5, rootfs: { ...pi5.rootfs, kernel: { ...pi5.rootfs.kernel!, version } } });

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-kernel-pin-');
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is asked of mmdebstrap at its version, with linux-base from backports, and is part of the cache key', async () => {
    const key = await rootfsKey(pi5, 1767225600);
    expect(key.kernel).toEqual(PI5_KERNEL);
    const include = mmdebstrapArgs(key, '/t', '/debs').find((a) => a.startsWith('--include='))!.slice('--include='.length).split(',');
    expect(include).toContain(`${PI5_KERNEL.package}=${PI5_KERNEL.version}`);
    expect(include).toContain('linux-base/trixie-backports');
    expect(include.filter((p) => p.startsWith('linux-image-'))).toEqual([`${PI5_KERNEL.package}=${PI5_KERNEL.version}`]);
    // A --packages-from build names packages only: its local repository has one version of each.
    expect(includeSpecs(key, true)).toEqual(key.packages);
    expect(JSON.stringify(await rootfsKey(withKernelVersion('7.3.5-1~bpo13+1'), 1767225600))).not.toBe(JSON.stringify(key));
  });

  it('a profile that pins a kernel from a suite it has no source for, or installs a second kernel beside the pin, is refused', () => {
    const kernel = { ...PI5_KERNEL, suite: 'bookworm-backports' };
    expect(() => validateProfile({ ...pi5Input, rootfs: { ...pi5Input.rootfs, kernel } }, 'pi5')).toThrow(
      /rootfs\.kernel\.suite: bookworm-backports is not a suite of this profile's apt sources \(trixie, trixie-backports\)/,
    );
    expect(() => validateProfile({ ...pi5Input, rootfs: { ...pi5Input.rootfs, packages: [...pi5Input.rootfs.packages, 'linux-image-arm64'] } }, 'pi5')).toThrow(
      /rootfs\.kernel pins the kernel; remove the other kernel packages \(linux-image-arm64\)/,
    );
  });

  it.skipIf(!hasArchive)("is found in the archive's trixie-backports", async () => {
    await expect(checkPinnedKernel(pi5, work, log)).resolves.toBeUndefined();
  });

  it.skipIf(!hasArchive)('a version the archive no longer has stops the build with exit 2 before mmdebstrap, naming the current kernel and how to pin it', async () => {
    const cacheDir = join(work, 'cache');
    const config = await defaultBuildConfig(withKernelVersion('7.3.0-1~bpo13+1'), { outDir: join(work, 'out'), cacheDir });
    const started = Date.now();
    const err = await buildImage(config, log, createProgress(log, { tty: false })).then(
      () => undefined,
      (e: unknown) => e,
    );
    const seconds = (Date.now() - started) / 1000;
    expect(err).toBeInstanceOf(MemuError);
    const failure = err as MemuError;
    expect(failure.exitCode).toBe(ExitCode.badInput);
    expect(failure.message).toMatch(
      /^pinned kernel linux-image-7\.3\.4\+deb13-arm64 7\.3\.0-1~bpo13\+1 is no longer in trixie-backports \(http:\/\/deb\.debian\.org\/debian\): the archive's current linux-image-arm64 is linux-image-\d+\.\d+\.\d+\+deb13-arm64 \d\S*~bpo13\+\d+$/,
    );
    // The current one is the generic flavour, never the 16K one.
    expect(failure.message).not.toContain('16k');
    expect(failure.hint).toMatch(/^pick the current one: set rootfs\.kernel in hardware\/profiles\/pi5\.ts to package 'linux-image-[^']+', version '[^']+'/);
    expect(seconds).toBeLessThan(60);
    // Nothing was built: no root filesystem entry, half-made or finished.
    expect(await readdir(join(cacheDir, 'rootfs')).catch(() => [])).toEqual([]);
  });
});
