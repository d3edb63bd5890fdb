import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImageManifest } from '../../../../image/release/image-manifest.ts';
import { buildQemuImage, commandResult, runMemu, type BuildOutput } from '../../../helpers/memu-build.ts';
import { debianArchiveReachable, prerequisite } from '../../../helpers/prerequisites.ts';

const exec = promisify(execFile);

const hasArchive = prerequisite('the Debian archive (http://deb.debian.org)', await debianArchiveReachable());

describe('memu build --packages-from: a rebuild with the package versions of an earlier build', () => {
  let work: string;
  let earlier: BuildOutput;
  let earlierManifest: ImageManifest;

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-build-pinned-');
    // From the cache when another test built qemu-amd64 already (CI saves a cold build): the
    // cold build that made the cached root filesystem recorded the archive's priorities beside
    // its .debs, which is what the pinned rebuild needs to mark the same packages.
    earlier = await buildQemuImage(join(work, 'earlier'));
    earlierManifest = JSON.parse(await readFile(earlier.manifest, 'utf8')) as ImageManifest;
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('installs exactly the recorded versions from the deb cache and, with nothing else changed, gives the same image bytes', async () => {
    // --refresh-rootfs: install from the pinned repository even when an earlier run cached the result.
    const pinned = await buildQemuImage(join(work, 'pinned'), ['--packages-from', earlier.manifest, '--refresh-rootfs']);
    expect(pinned.rootfsCacheHit).toBe(false);
    const manifest = JSON.parse(await readFile(pinned.manifest, 'utf8')) as ImageManifest;
    expect(manifest.packages).toEqual(earlierManifest.packages);
    const { stdout } = await exec('sha256sum', [earlier.manifest]);
    expect(manifest.packagesPinnedFrom).toEqual({ version: earlierManifest.version, manifestSha256: stdout.split(' ')[0] });
    // A pinned root filesystem is cached under its own key.
    expect(manifest.rootfs.key).not.toBe(earlierManifest.rootfs.key);
    // Nothing else changed (an edit of the agent's sources between the builds would show here).
    expect(manifest.agent).toEqual(earlierManifest.agent);
    await exec('cmp', [earlier.image, pinned.image]);
    expect(manifest.artifacts).toEqual(earlierManifest.artifacts);
  });

  it.skipIf(!hasArchive)('fails with exit 2 before any long work, naming every version neither the deb cache nor the archive has', async () => {
    const bad = structuredClone(earlierManifest);
    const tzdata = bad.packages.find((p) => p.name === 'tzdata')!;
    const zstd = bad.packages.find((p) => p.name === 'zstd')!;
    tzdata.version = '0.0-memu-never';
    zstd.version = '0.0-memu-never';
    const badPath = join(work, 'bad-manifest.json');
    await writeFile(badPath, JSON.stringify(bad));
    const out = join(work, 'bad');
    const r = await runMemu(['--json', 'build', 'qemu-amd64', '--out', out, '--packages-from', badPath]);
    expect(r.code, r.stderr.slice(-2000)).toBe(2);
    const result = commandResult(r);
    expect(result.error).toContain(`these 2 package versions from ${badPath} are neither in the deb cache`);
    expect(result.error).toContain(`tzdata=0.0-memu-never (${tzdata.arch})`);
    expect(result.error).toContain(`zstd=0.0-memu-never (${zstd.arch})`);
    expect(result.hint).toMatch(/snapshot\.debian\.org/);
    // Progress lines (stdout, with --json) show the pins stage ran and the root filesystem never started.
    expect(r.stdout).toContain('"stage":"pins"');
    expect(r.stdout + r.stderr).not.toContain('"stage":"rootfs"');
    expect(await readdir(out)).toEqual([]);
  });

  it('refuses the manifest of another profile, clearly and at once', async () => {
    const other = { ...earlierManifest, profile: 'nuc' };
    const path = join(work, 'nuc-manifest.json');
    await writeFile(path, JSON.stringify(other));
    const r = await runMemu(['--json', 'build', 'qemu-amd64', '--out', join(work, 'other'), '--packages-from', path]);
    expect(r.code).toBe(2);
    expect(commandResult(r).error).toContain(`${path} is the manifest of a nuc (amd64) build, not qemu-amd64 (amd64)`);
  });
});
