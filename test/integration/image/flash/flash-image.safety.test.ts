import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { link, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBmapFile } from '../../../../image/disk/bmap.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { flashImage, listBlockDevices, type BlockDevice } from '../../../../image/flash/index.ts';
import { attachLoop, createBmap, detachLoop, holdExclusively, kernelHasLoopDevices, makeSparseImage, sha256OfRange, type SparseImage } from '../../../helpers/flash-fixtures.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';

const execFileAsync = promisify(execFile);
const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const hasLoop = prerequisite('loop devices (losetup -f)', kernelHasLoopDevices());

const rootSource = await execFileAsync('findmnt', ['-n', '-o', 'SOURCE', '/']).then(
  ({ stdout }) => stdout.trim().replace(/\[.*\]$/, ''),
  () => '',
);
const rootOnBlockDevice = prerequisite(`/ on a block device (findmnt says "${rootSource}")`, rootSource.startsWith('/dev/'));

let dir: string;
let image: SparseImage; // 16 MiB with a GPT partition table, so a re-read partition table is visible
let imageSha: string;
const loops: string[] = [];
const mounts: string[] = [];

async function flashError(opts: Parameters<typeof flashImage>[0]): Promise<MemuError> {
  const err = await flashImage(opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'flashImage should have refused').toBeInstanceOf(MemuError);
  return err as MemuError;
}

/** A loop device over a fresh sparse file; with `partition`, it carries a GPT with one ext4 partition. */
async function loopDisk(name: string, sizeBytes: number, opts: { partition?: boolean; readOnly?: boolean } = {}): Promise<{ device: string; partition?: string; backing: string }> {
  const backing = join(dir, `${name}.disk`);
  await writeFile(backing, '');
  await truncate(backing, sizeBytes);
  if (opts.partition) await execFileAsync('sh', ['-c', `echo 'label: gpt\nstart=2048, size=${(sizeBytes / 512 / 2) | 0}, type=L' | sfdisk -q '${backing}'`]);
  const device = await attachLoop(backing, { partscan: opts.partition ?? false, readOnly: opts.readOnly ?? false });
  loops.push(device);
  if (!opts.partition) return { device, backing };
  const partition = await partitionOf(device);
  await execFileAsync('mkfs.ext4', ['-q', '-F', partition]);
  return { device, partition, backing };
}

/** The first partition of a loop device attached with partition scanning. */
async function partitionOf(device: string): Promise<string> {
  const partition = `${device}p1`;
  // Some kernels have no GPT parser of their own; partx adds the partition from user space.
  if (!existsSync(partition)) await execFileAsync('partx', ['-a', device]);
  return partition;
}

async function mount(partition: string): Promise<string> {
  const mnt = await mkdtemp(join(dir, 'mnt-'));
  await execFileAsync('mount', [partition, mnt]);
  mounts.push(mnt);
  return mnt;
}

async function isMounted(mnt: string): Promise<boolean> {
  return (await readFile('/proc/self/mounts', 'utf8')).split('\n').some((l) => l.split(' ')[1] === mnt);
}

beforeAll(async () => {
  dir = await mkdtemp('/var/tmp/memu-flash-safety-');
  image = await makeSparseImage(join(dir, 'memu.img'), { sizeBytes: 16 * MiB, mappedFraction: 0.3, seed: 5 });
  await execFileAsync('sh', ['-c', `echo 'label: gpt\nstart=2048, size=8192, type=L' | sfdisk -q '${image.path}'`]);
  await createBmap(image.path);
  imageSha = await sha256OfRange(image.path, 0, image.sizeBytes);
}, 60_000);

afterAll(async () => {
  for (const m of mounts) await execFileAsync('umount', [m]).catch(() => {});
  for (const l of loops) await detachLoop(l);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the running system', () => {
  it.skipIf(!rootOnBlockDevice)("refuses the disk holding this host's root, and memu devices marks it", async () => {
    // No --yes: even if the rule failed, the missing confirmation would stop the write.
    const err = await flashError({ image: image.path, target: rootSource, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/holds the running system \(\/[,)]/);
    const root = (await listBlockDevices()).find((d) => d.system);
    expect(root?.refusal).toMatch(/running system/);
  });

  it.skipIf(!hasLoop)('refuses a drive holding a system mount point even with --yes and --unmount, and leaves it mounted', async () => {
    const disk = await loopDisk('system', 64 * MiB, { partition: true });
    const mnt = await mount(disk.partition!);
    // The system's mount points are injectable: here the loop device's mount stands for /.
    const err = await flashError({ image: image.path, target: disk.device, yes: true, unmount: true, systemMountpoints: [mnt], log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toBe(`refusing to write ${disk.device}: ${disk.device} holds the running system (${mnt})`);
    expect(await isMounted(mnt)).toBe(true);
    const listed = (await listBlockDevices({ systemMountpoints: [`${mnt}/usr`] })).find((d) => d.path === disk.device);
    expect(listed).toMatchObject({ system: true, refusal: `holds the running system (${mnt})`, refusalClearedByUnmount: false });
  });
});

describe('refusal rules on real loop devices', () => {
  it.skipIf(!hasLoop)('refuses a drive with a mounted partition; --unmount unmounts it cleanly, flashes, and re-reads the partition table', async () => {
    const disk = await loopDisk('mounted', 64 * MiB, { partition: true });
    const mnt = await mount(disk.partition!);
    const listed = (await listBlockDevices()).find((d) => d.path === disk.device);
    expect(listed?.refusal).toContain(mnt);
    expect(listed?.refusalClearedByUnmount).toBe(true);
    expect(listed?.partitions.map((p) => p.path)).toEqual([disk.partition]);

    const err = await flashError({ image: image.path, target: disk.device, yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/mounted/);
    expect(err.hint).toMatch(/--unmount/);

    const result = await flashImage({ image: image.path, target: disk.device, yes: true, unmount: true, log });
    expect(result.verified).toBe(true);
    expect(await isMounted(mnt)).toBe(false);
    expect(result.partitionTableReread).toBe(true);
    // The image's own partition (8192 sectors) is what the kernel now shows.
    const sectors = Number(await readFile(`/sys/block/${basename(disk.device)}/${basename(disk.device)}p1/size`, 'utf8'));
    expect(sectors).toBe(8192);
    for (const x of image.extents) expect(await sha256OfRange(disk.device, x.start, x.length)).toBe(await sha256OfRange(image.path, x.start, x.length));
  });

  it.skipIf(!hasLoop)('refuses a partition unless --allow-partition', async () => {
    const disk = await loopDisk('parted', 64 * MiB, { partition: true });
    const err = await flashError({ image: image.path, target: disk.partition!, yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/partition, not a whole drive/);
    const result = await flashImage({ image: image.path, target: disk.partition!, yes: true, allowPartition: true, log });
    expect(result.verified).toBe(true);
  });

  it.skipIf(!hasLoop)('refuses a read-only drive (losetup -r) with its reason, and memu devices marks it', async () => {
    const disk = await loopDisk('read-only', 32 * MiB, { readOnly: true });
    const err = await flashError({ image: image.path, target: disk.device, yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toBe(`refusing to write ${disk.device}: ${disk.device} is read-only (write-protect switch?)`);
    const run = await runMemu(['--json', 'devices']);
    expect(commandResult<{ devices: BlockDevice[] }>(run).devices.find((d) => d.path === disk.device)).toMatchObject({ readOnly: true, refusal: 'is read-only (write-protect switch?)' });
  });

  it.skipIf(!hasLoop)('refuses a drive another program holds open exclusively, and flashes it once that program lets go', async () => {
    const disk = await loopDisk('busy', 32 * MiB);
    const holder = await holdExclusively(disk.device);
    try {
      const err = await flashError({ image: image.path, target: disk.device, yes: true, unmount: true, log });
      expect(err.exitCode).toBe(ExitCode.targetRefused);
      expect(err.message).toBe(`refusing to write ${disk.device}: ${disk.device} is in use: another program has it open exclusively`);
      const run = await runMemu(['--json', 'devices']);
      expect(commandResult<{ devices: BlockDevice[] }>(run).devices.find((d) => d.path === disk.device)?.refusal).toMatch(/another program/);
    } finally {
      await holder.release();
    }
    expect((await flashImage({ image: image.path, target: disk.device, yes: true, log })).verified).toBe(true);
  });

  it.skipIf(!hasLoop)('the exclusive open of the write is the last check: a drive taken between the question and the write is refused', async () => {
    const disk = await loopDisk('taken', 32 * MiB);
    let holder: Awaited<ReturnType<typeof holdExclusively>> | undefined;
    try {
      const err = await flashError({ image: image.path, target: disk.device, log, confirm: async () => ((holder = await holdExclusively(disk.device)), true) });
      expect(err.exitCode).toBe(ExitCode.targetRefused);
      expect(err.message).toMatch(/is in use/);
    } finally {
      await holder?.release();
    }
  });

  it('refuses a drive name that does not exist instead of creating a file in /dev', async () => {
    const err = await flashError({ image: image.path, target: '/dev/memu-no-such-drive', yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/no drive/);
    expect(existsSync('/dev/memu-no-such-drive')).toBe(false);
  });

  it('refuses a target that is a directory or a character device', async () => {
    expect((await flashError({ image: image.path, target: dir, log })).message).toBe(`the target ${dir} is a directory`);
    const nul = await flashError({ image: image.path, target: '/dev/null', log });
    expect(nul.exitCode).toBe(ExitCode.targetRefused);
    expect(nul.message).toMatch(/character device/);
  });

  it.skipIf(!hasLoop)('refuses a drive smaller than the image', async () => {
    const disk = await loopDisk('tiny', 8 * MiB);
    const err = await flashError({ image: image.path, target: disk.device, yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/too small: 8388608 bytes, the image needs 16777216/);
  });

  it.skipIf(!hasLoop)('writes a drive only with --yes or a confirmation that saw model, size and serial', async () => {
    const disk = await loopDisk('confirm', 32 * MiB);
    const noYes = await flashError({ image: image.path, target: disk.device, log });
    expect(noYes.exitCode).toBe(ExitCode.targetRefused);
    expect(noYes.message).toMatch(/without confirmation/);

    const seen: BlockDevice[] = [];
    const declined = await flashError({ image: image.path, target: disk.device, log, confirm: async (d) => (seen.push(d), false) });
    expect(declined.exitCode).toBe(ExitCode.targetRefused);
    const ok = await flashImage({ image: image.path, target: disk.device, log, confirm: async (d) => (seen.push(d), true) });
    expect(ok.verified).toBe(true);
    expect(seen[0]).toMatchObject({ path: disk.device, sizeBytes: 32 * MiB, model: disk.backing, transport: 'loop' });
  });
});

describe('the image is never written onto itself', () => {
  async function expectRefusedAndIntact(target: string, what: RegExp, opts: Partial<Parameters<typeof flashImage>[0]> = {}): Promise<void> {
    const err = await flashError({ image: image.path, target, yes: true, allowPartition: true, log, ...opts });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(what);
    expect(await sha256OfRange(image.path, 0, image.sizeBytes)).toBe(imageSha);
  }

  it('not by its own path, nor its bmap', async () => {
    await expectRefusedAndIntact(image.path, /^the target .* is the image .*: flashing would destroy it$/);
    await expectRefusedAndIntact(`${image.path}.bmap`, /is its bmap/);
  });

  it('not through a hard link or a symlink', async () => {
    const hard = join(dir, 'hard-link.img');
    await link(image.path, hard);
    await expectRefusedAndIntact(hard, /is a hard link to .*the image/);
    const soft = join(dir, 'symlink.img');
    await symlink(image.path, soft);
    await expectRefusedAndIntact(soft, /is a symlink to the image/);
  });

  it.skipIf(!hasLoop)('not through a loop device reading it, or a partition of one', async () => {
    const device = await attachLoop(image.path, { partscan: true });
    loops.push(device);
    await expectRefusedAndIntact(device, /is a loop device reading the image/);
    await expectRefusedAndIntact(await partitionOf(device), /is a partition of .* which reads the image/);
    await detachLoop(device);
  });
});

describe('the memu flash and memu devices commands', () => {
  it('flash --json prints progress lines and a final result object on stdout', async () => {
    const target = join(dir, 'cli-out.img');
    const run = await runMemu(['--json', 'flash', image.path, target]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.type === 'progress' && l.stage === 'write')).toBe(true);
    expect(lines.some((l) => l.type === 'progress' && l.stage === 'verify')).toBe(true);
    // The partition table added blocks to the generated extents: the bmap is the reference.
    const { mappedBytes } = await readBmapFile(`${image.path}.bmap`);
    expect(commandResult(run)).toMatchObject({ type: 'result', command: 'flash', ok: true, image: image.path, target, bytesWritten: mappedBytes, mappedBytes, verified: true });
    expect(typeof commandResult(run).seconds).toBe('number');
  });

  it.skipIf(!hasLoop)('flash exits 5 on a drive without --yes when nobody can confirm, with ok:false in the JSON result', async () => {
    const disk = await loopDisk('cli', 32 * MiB);
    const run = await runMemu(['--json', 'flash', image.path, disk.device]);
    expect(run.code).toBe(ExitCode.targetRefused);
    const result = commandResult(run);
    expect(result).toMatchObject({ type: 'result', command: 'flash', ok: false, exitCode: ExitCode.targetRefused });
    expect(String(result.error)).toMatch(/without confirmation/);
  });

  it('flash exits 2 for a corrupt image, also with --json', async () => {
    const bad = join(dir, 'bad.img.gz');
    await writeFile(bad, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    const run = await runMemu(['flash', bad, join(dir, 'never.img')]);
    expect(run.code).toBe(ExitCode.badInput);
    expect(run.stderr).toMatch(/truncated or corrupt/);
    const json = await runMemu(['--json', 'flash', bad, join(dir, 'never.img')]);
    expect(commandResult(json)).toMatchObject({ command: 'flash', ok: false, exitCode: ExitCode.badInput });
  });

  it.skipIf(!hasLoop)('devices lists drives with model, size and transport, and marks refused ones with the reason', async () => {
    const disk = await loopDisk('listed', 32 * MiB);
    const json = await runMemu(['--json', 'devices']);
    expect(json.code, json.stderr).toBe(0);
    const result = commandResult<{ devices: BlockDevice[] }>(json);
    expect(result).toMatchObject({ type: 'result', command: 'devices', ok: true });
    expect(result.devices.find((d) => d.path === disk.device)).toMatchObject({ sizeBytes: 32 * MiB, transport: 'loop', model: disk.backing, removable: false });
    expect(result.devices.find((d) => d.path === disk.device)?.refusal).toBeUndefined();

    const table = await runMemu(['devices']);
    expect(table.stdout).toMatch(/PATH\s+SIZE\s+MODEL\s+SERIAL\s+TRAN\s+REMOVABLE\s+MOUNTED\s+STATUS/);
    expect(table.stdout).toContain(disk.device);
  });

  it.skipIf(!rootOnBlockDevice)("devices marks this host's root disk as refused", async () => {
    const result = commandResult<{ devices: BlockDevice[] }>(await runMemu(['--json', 'devices']));
    expect(result.devices.find((d) => d.system)?.refusal).toMatch(/running system/);
    expect((await runMemu(['devices'])).stdout).toMatch(/REFUSED: holds the running system/);
  });
});
