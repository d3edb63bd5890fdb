/**
 * The disk repairs against a real dockerd on a real, full ext4: a 256 MiB loop-mounted
 * filesystem (1 % reserved blocks, as the image formats the data partition) holds a
 * throwaway dockerd's data-root, a named volume and the family's files. Docker is given a
 * dangling image and an old stack's stopped container, the family's files fill the disk
 * to the last block, and one round of the disk-space check and the repairer gets the
 * space back while the family's files, the volume, the current stack's container and a
 * tagged image nobody runs yet stay exactly as they were.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, mkdir, readdir, readFile, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Docker from 'dockerode';
import pino from 'pino';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { CheckResult } from '../../../../agent/health/checks/check.ts';
import { DEFAULT_DISK_SPACE_THRESHOLDS, createDiskSpaceCheck } from '../../../../agent/health/checks/disk-space.ts';
import { loadHealthHistory } from '../../../../agent/health/health-history.ts';
import { createRepairer, createSpaceReserve, freeDiskSpaceRepair } from '../../../../agent/health/repairs/index.ts';
import { STACK_LABEL, VOLUME_LABEL } from '../../../../agent/stack/labels.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { startThrowawayDockerd, type ThrowawayDockerd } from '../../../../image/preload/throwaway-dockerd.ts';
import { runCommand } from '../../../../shared/process/run-command.ts';
import { kernelHasLoopDevices } from '../../../helpers/flash-fixtures.ts';
import { isRoot, prerequisite } from '../../../helpers/prerequisites.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const hostLog = createHostLogger({ json: true, level: 'silent' });
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const canMount = prerequisite('root and loop devices, to mount a small ext4 (losetup -f)', isRoot && kernelHasLoopDevices());
const MiB = 2 ** 20;

/** A small ext4 on a loop device, mounted until the test ends. */
async function smallExt4(dir: string, sizeMiB: number): Promise<string> {
  const image = join(dir, 'data.img');
  const mountPoint = join(dir, 'data');
  await runCommand('truncate', ['-s', `${sizeMiB}M`, image]);
  await runCommand('mkfs.ext4', ['-q', '-F', '-m', '1', image]);
  await mkdir(mountPoint);
  await runCommand('mount', ['-o', 'loop', image, mountPoint]);
  // mount -o loop sets autoclear: unmounting detaches the loop device.
  onTestFinished(() => runCommand('umount', [mountPoint]).then(() => undefined));
  return mountPoint;
}

/** Builds a one-layer image from scratch holding `payload` bytes of random data (incompressible, as photos are). */
async function buildImage(docker: Docker, contextDir: string, tag: string, payloadBytes: number): Promise<string> {
  await mkdir(contextDir, { recursive: true });
  await writeFile(join(contextDir, 'payload'), randomBytes(payloadBytes));
  await writeFile(join(contextDir, 'Dockerfile'), ['FROM scratch', 'COPY payload /payload', 'CMD ["/payload"]', ''].join('\n'));
  const stream = await docker.buildImage({ context: contextDir, src: ['Dockerfile', 'payload'] }, { t: tag, rm: true });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => (err ? reject(err) : out.find((o) => o.error) ? reject(new Error(out.find((o) => o.error)!.error)) : resolve())));
  return (await docker.getImage(tag).inspect()).Id;
}

/** SHA-256 of every file below `dir`, by relative path. */
async function hashTree(dir: string, prefix = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) Object.assign(out, await hashTree(path, `${prefix}${entry.name}/`));
    else out[`${prefix}${entry.name}`] = createHash('sha256').update(await readFile(path)).digest('hex');
  }
  return out;
}

/** Fills the filesystem to its last block, as root (into the reserved blocks too): the family's videos. */
async function fillToTheBrim(path: string): Promise<void> {
  const s = await statfs(join(path, '..'));
  // Most of it at once (fallocate needs room for its own extent blocks), the rest written.
  await runCommand('fallocate', ['-l', String(Math.floor(s.bfree * s.bsize * 0.9)), path]);
  const fh = await open(path, 'a');
  const chunk = Buffer.alloc(64 * 1024, 7);
  try {
    for (;;) await fh.write(chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
  const small = Buffer.alloc(1024, 7);
  try {
    for (;;) await fh.write(small);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fh.close();
  }
}

const freeBytes = async (path: string) => {
  const s = await statfs(path);
  return s.bavail * s.bsize;
};

describe('disk repairs on a full filesystem (real dockerd, loop-mounted ext4)', () => {
  it.skipIf(!canMount)('gets space back by pruning, never touching the family\'s files, named volumes or the current stack', async () => {
    const dir = await tempDir('memu-disk-repair-');
    const data = await smallExt4(dir, 256);
    let daemon: ThrowawayDockerd | undefined;
    onTestFinished(async () => {
      await daemon?.stop();
    });
    daemon = await startThrowawayDockerd({ dataRoot: join(data, 'docker'), log: hostLog });
    const { docker } = daemon;

    // The family's files, and a named volume with a file in it.
    const family = join(data, 'family');
    await mkdir(join(family, 'photos'), { recursive: true });
    for (const name of ['a.jpg', 'b.jpg', 'c.jpg']) await writeFile(join(family, 'photos', name), randomBytes(MiB));
    await writeFile(join(family, 'notes.txt'), 'the family\'s own words\n');
    await docker.createVolume({ Name: 'memu_photos', Labels: { [VOLUME_LABEL]: 'photos', [STACK_LABEL]: 'memu' } });
    const volumePath = (await docker.getVolume('memu_photos').inspect()).Mountpoint;
    await writeFile(join(volumePath, 'album.db'), randomBytes(256 * 1024));
    const volumeBefore = await hashTree(volumePath);

    // Docker's leftovers: an image that lost its tag to a newer build (dangling), and an
    // old stack's stopped container whose image lost its tag too.
    const context = join(dir, 'context');
    const dangling = await buildImage(docker, join(context, 'v1'), 'memu-test/app:1', 8 * MiB);
    const current = await buildImage(docker, join(context, 'v2'), 'memu-test/app:1', 4096);
    expect(current).not.toBe(dangling);
    const oldImage = await buildImage(docker, join(context, 'old'), 'memu-test/old:1', 48 * MiB);
    const oldContainer = await docker.createContainer({ Image: 'memu-test/old:1', Labels: { [STACK_LABEL]: 'memu-old' } });
    // The tag moved on to a newer build: the old image is untagged but held by the container.
    const retagged = await buildImage(docker, join(context, 'old-next'), 'memu-test/old:1', 4096);
    // The current stack's container, stopped (a one-shot service, or one in backoff), and an
    // image preloaded for an update that nothing runs yet: neither may go.
    const currentContainer = await docker.createContainer({ Image: 'memu-test/app:1', Labels: { [STACK_LABEL]: 'memu' } });
    const next = await buildImage(docker, join(context, 'next'), 'memu-test/next:1', 4096);

    const history = await loadHealthHistory(join(data, 'agent', 'health-history.json'), Date.now(), log);
    const { data: dataLimits } = DEFAULT_DISK_SPACE_THRESHOLDS;
    const reserve = createSpaceReserve({ dataDir: data, keepFree: dataLimits.degraded });
    const repairer = createRepairer({
      repairs: [
        freeDiskSpaceRepair({
          docker,
          filesystems: [{ check: 'data-disk-space', path: data, enough: dataLimits.degraded }],
          currentStackLabel: () => `${STACK_LABEL}=memu`,
          journalDir: join(dir, 'journal'),
          vacuumJournal: async () => 'not asked: the host\'s journal is not this test\'s',
        }),
        reserve.repairs.release,
        reserve.repairs.restore,
      ],
      history,
      log,
    });
    const check = createDiskSpaceCheck({ dataDir: data, rootDir: data, dockerDataRoot: join(data, 'docker'), journalDir: join(dir, 'journal'), measureDocker: async () => undefined });
    const dataResult = async (): Promise<CheckResult[]> => {
      const results = (await check.run()).filter((r) => r.check === 'data-disk-space');
      for (const r of results) history.observe(r, Date.now());
      return results;
    };

    // While the disk is fine, the reserve is set aside.
    const first = await dataResult();
    expect(first[0]).toMatchObject({ status: 'ok' });
    const setAside = await repairer.round(first);
    expect(setAside.ran.map((r) => r.repair)).toEqual(['restore-space-reserve']);
    const reserved = (await stat(reserve.path)).blocks * 512;
    expect(reserved).toBeGreaterThanOrEqual((await reserve.state()).wantedBytes);

    await fillToTheBrim(join(family, 'videos.mp4'));
    expect(await freeBytes(data)).toBe(0);
    const familyBefore = await hashTree(family);

    const fullStarted = performance.now();
    const full = await dataResult();
    expect(full[0]).toMatchObject({ check: 'data-disk-space', status: 'unhealthy' });
    const round = await repairer.round(full);
    const repairSeconds = (performance.now() - fullStarted) / 1000;

    const prune = round.ran.find((r) => r.repair === 'free-disk-space');
    expect(prune?.outcome.ok, prune?.outcome.message).toBe(true);
    // 8 MiB dangling were not enough (the check wants 10 % of the disk free), so the old
    // container and its 48 MiB image went too (less the 1 % of blocks reserved for root,
    // which the filler had taken and which free space as programs see it does not count);
    // that was enough, so the build cache and the journal were left alone.
    expect(prune!.outcome.freedBytes).toBeGreaterThan(50 * MiB);
    expect(prune!.outcome.message).toMatch(/^Freed \d+ MB: dangling-images [\d.]+ MB \(.*\); old-containers \d+ MB \(1 stopped containers removed, Docker counts .*, then [1-9]\d* images and layers they left, \d+ MB\)\. Now \d+ MB free on .*\.$/);
    expect(await freeBytes(data)).toBeGreaterThan(50 * MiB);
    // Pruning got the space back, so the reserve was not needed and stays.
    expect(round.ran.map((r) => r.repair)).toEqual(['free-disk-space']);
    expect((await stat(reserve.path)).blocks * 512).toBe(reserved);

    const after = await dataResult();
    expect(after[0]).toMatchObject({ status: 'ok' });
    expect(await hashTree(family)).toEqual(familyBefore);
    expect(await hashTree(volumePath)).toEqual(volumeBefore);
    expect((await docker.listVolumes()).Volumes.map((v) => v.Name)).toEqual(['memu_photos']);
    const images = await docker.listImages({ all: true });
    const ids = images.map((i) => i.Id);
    expect(ids).toContain(current);
    expect(ids).toContain(next);
    expect(ids).toContain(retagged);
    expect(ids).not.toContain(dangling);
    expect(ids).not.toContain(oldImage);
    const containers = (await docker.listContainers({ all: true })).map((c) => c.Id);
    expect(containers).toEqual([currentContainer.id]);
    expect(containers).not.toContain(oldContainer.id);
    const events = history.events();
    expect(events.find((e) => e.kind === 'repair' && e.repair === 'free-disk-space')).toMatchObject({ outcome: 'ok', freedBytes: prune!.outcome.freedBytes });
    process.stderr.write(`disk repair: check + repair round on the full disk ${repairSeconds.toFixed(2)} s (${prune!.outcome.message})\n`);
  });

  it.skipIf(!canMount)('gives the reserve back when pruning cannot make room, and restores it once there is room again', async () => {
    const dir = await tempDir('memu-disk-reserve-');
    const data = await smallExt4(dir, 64);
    const { data: dataLimits } = DEFAULT_DISK_SPACE_THRESHOLDS;
    // Judged with the device's numbers except the reserve's size, which is at least 4 MiB
    // here so that giving it back is measurable on a 64 MiB disk.
    const reserve = createSpaceReserve({ dataDir: data, keepFree: dataLimits.degraded, numbers: { fraction: 0.08, maxBytes: 2 ** 30, nearlyFullFraction: 0.0025, nearlyFullMaxBytes: 128 * MiB } });
    const history = await loadHealthHistory(join(data, 'agent', 'health-history.json'), Date.now(), log);
    let now = Date.now();
    const repairer = createRepairer({ repairs: [reserve.repairs.release, reserve.repairs.restore], history, log, now: () => now });
    const check = createDiskSpaceCheck({ dataDir: data, rootDir: data, journalDir: join(dir, 'journal'), measureDocker: async () => undefined });
    const results = async () => (await check.run()).filter((r) => r.check === 'data-disk-space');

    expect((await repairer.round(await results())).ran.map((r) => r.repair)).toEqual(['restore-space-reserve']);
    const held = (await reserve.state()).heldBytes;
    expect(held).toBeGreaterThanOrEqual(4 * MiB);

    const videos = join(data, 'videos.mp4');
    await fillToTheBrim(videos);
    const released = await repairer.round(await results());
    expect(released.ran.map((r) => [r.repair, r.outcome.ok])).toEqual([['release-space-reserve', true]]);
    expect(await freeBytes(data)).toBeGreaterThanOrEqual(held - MiB);
    // The box can write its records again.
    await writeFile(join(data, 'agent', 'memu.db'), randomBytes(MiB));

    // The family deletes the videos: the next round (6 hours later, the restore's gap) sets the reserve aside again.
    await runCommand('rm', [videos]);
    now += 6 * 3600_000;
    expect((await repairer.round(await results())).ran.map((r) => r.repair)).toEqual(['restore-space-reserve']);
    expect((await reserve.state()).heldBytes).toBe(held);
  });
});
