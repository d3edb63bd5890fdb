import { statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../../../../agent/health/checks/check.ts';
import { freeDiskSpaceRepair, lowFilesystems } from '../../../../../agent/health/repairs/free-disk-space.ts';
import { runCommand } from '../../../../../shared/process/run-command.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const low = (check: string): CheckResult => ({ check, status: 'degraded', reason: `${check} is low`, metrics: [] });
const fine = (check: string): CheckResult => ({ check, status: 'ok', reason: `${check} is fine`, metrics: [] });

/** A Docker API that records the prunes asked of it; `onImagePrune` may free real space. */
function fakeDocker(rootDir: string, onImagePrune: () => Promise<void> = async () => {}) {
  const calls: { call: string; opts?: unknown }[] = [];
  const docker = {
    info: async () => ({ DockerRootDir: rootDir }),
    pruneImages: async (opts: unknown) => {
      calls.push({ call: 'pruneImages', opts });
      await onImagePrune();
      return { ImagesDeleted: [{ Deleted: 'sha256:1' }], SpaceReclaimed: 1234 };
    },
    pruneContainers: async (opts: unknown) => {
      calls.push({ call: 'pruneContainers', opts });
      return { ContainersDeleted: ['c1', 'c2'], SpaceReclaimed: 0 };
    },
    pruneBuilder: async () => {
      calls.push({ call: 'pruneBuilder' });
      return { CachesDeleted: null, SpaceReclaimed: 0 };
    },
  };
  return { docker: docker as unknown as Docker, calls };
}

const NEVER_ENOUGH = { share: 1, bytes: Number.MAX_SAFE_INTEGER };
const SOME = { share: 0.1, bytes: 1e9 };

describe('free-disk-space', () => {
  it('answers the data and root disk-space checks when not ok, and not while Docker does not answer', () => {
    const repair = freeDiskSpaceRepair({ docker: {} as Docker, filesystems: [{ check: 'data-disk-space', path: '/', enough: SOME }, { check: 'root-disk-space', path: '/', enough: SOME }], currentStackLabel: () => undefined });
    expect(repair.answers([fine('data-disk-space'), fine('root-disk-space')], {} as never)).toBe(false);
    expect(repair.answers([fine('data-disk-space'), low('root-disk-space')], {} as never)).toBe(true);
    expect(repair.answers([low('data-disk-space'), { ...low('docker-responsive'), status: 'unhealthy' }], {} as never)).toBe(false);
    expect(lowFilesystems([low('data-disk-space'), fine('root-disk-space')], [{ check: 'data-disk-space', path: '/d', enough: SOME }, { check: 'root-disk-space', path: '/', enough: SOME }])).toEqual([{ check: 'data-disk-space', path: '/d', enough: SOME }]);
  });

  it('prunes in order — dangling images, stopped containers not of the current stack, build cache, the journal — holding the stack still', async () => {
    const dir = await tempDir('memu-free-');
    const { docker, calls } = fakeDocker(dir);
    const held: string[] = [];
    let vacuumed = 0;
    const repair = freeDiskSpaceRepair({
      docker,
      filesystems: [{ check: 'data-disk-space', path: dir, enough: NEVER_ENOUGH }],
      currentStackLabel: () => 'org.memu.stack=memu',
      holdStack: async (reason, fn) => {
        held.push(reason);
        return fn();
      },
      journalDir: dir,
      vacuumJournal: async () => (vacuumed++, 'Vacuuming done, freed 0B'),
    });
    const outcome = await repair.run([low('data-disk-space')]);
    expect(calls).toEqual([
      { call: 'pruneImages', opts: { filters: { dangling: ['true'] } } },
      { call: 'pruneContainers', opts: { filters: { 'label!': ['org.memu.stack=memu'] } } },
      // The images the removed containers held are dangling now.
      { call: 'pruneImages', opts: { filters: { dangling: ['true'] } } },
      { call: 'pruneBuilder' },
    ]);
    expect(held).toEqual(['pruning dangling images', 'pruning old containers', 'pruning the build cache']);
    expect(vacuumed).toBe(1);
    expect(outcome.message).toMatch(/^Freed .*: dangling-images .* \(1 images and layers deleted, Docker counts 1\.2 kB\); old-containers .* \(2 stopped containers removed, Docker counts 0 bytes, then 1 images and layers they left, 1\.2 kB\); build-cache .*; old-logs .* \(Vacuuming done, freed 0B\)\. Now .* free on .*; still low/);
    expect(outcome.freedBytes).toEqual(expect.any(Number));
  });

  it('prunes no container while the current stack is not known', async () => {
    const dir = await tempDir('memu-free-');
    const { docker, calls } = fakeDocker(dir);
    const repair = freeDiskSpaceRepair({ docker, filesystems: [{ check: 'data-disk-space', path: dir, enough: NEVER_ENOUGH }], currentStackLabel: () => undefined, journalDir: dir, vacuumJournal: async () => '' });
    const outcome = await repair.run([low('data-disk-space')]);
    expect(calls.map((c) => c.call)).toEqual(['pruneImages', 'pruneBuilder']);
    expect(outcome.message).toContain('old-containers passed over (the current stack is not known yet, so no container is taken for an old one)');
  });

  it('passes over stages whose files are not on the low filesystem', async () => {
    const dir = await tempDir('memu-free-');
    const { docker, calls } = fakeDocker('/proc');
    let vacuumed = 0;
    const repair = freeDiskSpaceRepair({ docker, filesystems: [{ check: 'data-disk-space', path: dir, enough: NEVER_ENOUGH }], currentStackLabel: () => 'x=y', journalDir: '/proc', vacuumJournal: async () => (vacuumed++, '') });
    const outcome = await repair.run([low('data-disk-space')]);
    expect(calls).toEqual([]);
    expect(vacuumed).toBe(0);
    expect(outcome).toMatchObject({ ok: false, freedBytes: 0 });
    expect(outcome.message).toContain("dangling-images passed over (Docker's data (/proc) is not on a low filesystem)");
    expect(outcome.message).toContain('old-logs passed over (the journal (/proc) is not on a low filesystem)');
  });

  it('stops as soon as enough is free, and counts what each stage freed on the disk', async () => {
    const dir = await tempDir('memu-free-');
    const big = join(dir, 'dangling-layer');
    await runCommand('fallocate', ['-l', String(64 * 2 ** 20), big]);
    const s = await statfs(dir);
    // Enough once 32 MiB more than now is free: removing the 64 MiB "layer" gets there.
    const enough = { share: 1, bytes: s.bavail * s.bsize + 32 * 2 ** 20 };
    const { docker, calls } = fakeDocker(dir, () => unlink(big));
    const repair = freeDiskSpaceRepair({ docker, filesystems: [{ check: 'data-disk-space', path: dir, enough }], currentStackLabel: () => 'x=y', journalDir: dir, vacuumJournal: async () => '' });
    expect(await repair.needed!([low('data-disk-space')])).toBe(true);
    const outcome = await repair.run([low('data-disk-space')]);
    expect(calls.map((c) => c.call)).toEqual(['pruneImages']);
    expect(outcome.ok).toBe(true);
    expect(outcome.freedBytes).toBeGreaterThan(48 * 2 ** 20);
    expect(outcome.message).toMatch(/^Freed \d+ MB: dangling-images \d+ MB \(.*\)\. Now .* free on .*\.$/);
    expect(await repair.needed!([low('data-disk-space')])).toBe(false);
  });

  it('reports a failing stage and goes on with the next', async () => {
    const dir = await tempDir('memu-free-');
    const { docker, calls } = fakeDocker(dir);
    (docker as unknown as { pruneImages: () => Promise<never> }).pruneImages = () => Promise.reject(new Error('(HTTP code 409) conflict'));
    const repair = freeDiskSpaceRepair({ docker, filesystems: [{ check: 'data-disk-space', path: dir, enough: NEVER_ENOUGH }], currentStackLabel: () => 'x=y', journalDir: '/proc', vacuumJournal: async () => '' });
    const outcome = await repair.run([low('data-disk-space')]);
    expect(outcome.message).toContain('dangling-images 0 bytes (failed: (HTTP code 409) conflict)');
    expect(calls.map((c) => c.call)).toEqual(['pruneContainers', 'pruneBuilder']);
    // (the fake's image prune fails, so the second one is not recorded either)
    expect(outcome.ok).toBe(false);
  });

  it('counts free inodes too: a disk with bytes to spare but too few inodes is pruned', async () => {
    const dir = await tempDir('memu-free-');
    const { docker, calls } = fakeDocker(dir);
    const plenty = { share: 0, bytes: 0 };
    const repair = (share: number) =>
      freeDiskSpaceRepair({ docker, filesystems: [{ check: 'data-disk-space', path: dir, enough: plenty, enoughInodesShare: share }], currentStackLabel: () => 'x=y', journalDir: '/proc', vacuumJournal: async () => '' });
    expect(await repair(0.01).needed!([low('data-disk-space')])).toBe(false);
    // More free inodes than there are is never enough.
    expect(await repair(1.01).needed!([low('data-disk-space')])).toBe(true);
    await repair(1.01).run([low('data-disk-space')]);
    expect(calls.map((c) => c.call)).toEqual(['pruneImages', 'pruneContainers', 'pruneImages', 'pruneBuilder']);
  });
});
