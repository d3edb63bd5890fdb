import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBmapFile } from '../../../../image/disk/bmap.ts';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { flashImage, listBlockDevices, type BlockDevice } from '../../../../image/flash/index.ts';
import { attachLoop, createBmap, detachLoop, kernelHasLoopDevices, makeSparseImage, memuCommandLine, runMemu, sha256OfRange, type SparseImage } from '../../../helpers/flash-fixtures.ts';

const execFileAsync = promisify(execFile);
const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const hasLoop = kernelHasLoopDevices();

const rootSource = await execFileAsync('findmnt', ['-n', '-o', 'SOURCE', '/']).then(
  ({ stdout }) => stdout.trim().replace(/\[.*\]$/, ''),
  () => '',
);
const rootIsBlockDevice = rootSource.startsWith('/dev/');

let dir: string;
let image: SparseImage; // 16 MiB with a GPT partition table, so a re-read partition table is visible
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
async function loopDisk(name: string, sizeBytes: number, opts: { partition?: boolean } = {}): Promise<{ device: string; partition?: string; backing: string }> {
  const backing = join(dir, `${name}.disk`);
  await writeFile(backing, '');
  await truncate(backing, sizeBytes);
  if (opts.partition) await execFileAsync('sh', ['-c', `echo 'label: gpt\nstart=2048, size=${(sizeBytes / 512 / 2) | 0}, type=L' | sfdisk -q '${backing}'`]);
  const device = await attachLoop(backing, { partscan: opts.partition ?? false });
  loops.push(device);
  if (!opts.partition) return { device, backing };
  const partition = `${device}p1`;
  // Some kernels have no GPT parser of their own; partx adds the partition from user space.
  if (!existsSync(partition)) await execFileAsync('partx', ['-a', device]);
  await execFileAsync('mkfs.ext4', ['-q', '-F', partition]);
  return { device, partition, backing };
}

async function mount(partition: string): Promise<string> {
  const mnt = await mkdtemp(join(dir, 'mnt-'));
  await execFileAsync('mount', [partition, mnt]);
  mounts.push(mnt);
  return mnt;
}

beforeAll(async () => {
  dir = await mkdtemp('/var/tmp/memu-flash-safety-');
  image = await makeSparseImage(join(dir, 'memu.img'), { sizeBytes: 16 * MiB, mappedFraction: 0.3, seed: 5 });
  await execFileAsync('sh', ['-c', `echo 'label: gpt\nstart=2048, size=8192, type=L' | sfdisk -q '${image.path}'`]);
  await createBmap(image.path);
}, 60_000);

afterAll(async () => {
  for (const m of mounts) await execFileAsync('umount', [m]).catch(() => {});
  for (const l of loops) await detachLoop(l);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('refusal rules', () => {
  it.skipIf(!rootIsBlockDevice)(`refuses the disk holding the running system's root (skipped only when / is not on a block device: "${rootSource}")`, async () => {
    // No --yes: even if the rule failed, the missing confirmation would stop the write.
    const err = await flashError({ image: image.path, target: rootSource, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/running system/);
    const devices = await listBlockDevices();
    const root = devices.find((d) => d.system);
    expect(root?.refusal).toMatch(/running system/);
  });

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
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(mnt);
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

  it('refuses a drive name that does not exist instead of creating a file in /dev', async () => {
    const err = await flashError({ image: image.path, target: '/dev/memu-no-such-drive', yes: true, log });
    expect(err.exitCode).toBe(ExitCode.targetRefused);
    expect(err.message).toMatch(/no drive/);
    expect(existsSync('/dev/memu-no-such-drive')).toBe(false);
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

describe('the memu flash and memu devices commands', () => {
  const memu = memuCommandLine;

  it('flash --json prints progress lines and a final result object on stdout', async () => {
    const target = join(dir, 'cli-out.img');
    const run = await runMemu(memu, ['--json', 'flash', image.path, target]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.some((l) => l.type === 'progress' && l.stage === 'write')).toBe(true);
    expect(lines.some((l) => l.type === 'progress' && l.stage === 'verify')).toBe(true);
    const result = lines.at(-1)!;
    // The partition table added blocks to the generated extents: the bmap is the reference.
    const { mappedBytes } = await readBmapFile(`${image.path}.bmap`);
    expect(result).toMatchObject({ type: 'result', ok: true, image: image.path, target, bytesWritten: mappedBytes, mappedBytes, verified: true });
    expect(typeof result.seconds).toBe('number');
  });

  it.skipIf(!hasLoop)('flash exits 5 on a drive without --yes when nobody can confirm, with ok:false in the JSON result', async () => {
    const disk = await loopDisk('cli', 32 * MiB);
    const run = await runMemu(memu, ['--json', 'flash', image.path, disk.device]);
    expect(run.code).toBe(ExitCode.targetRefused);
    const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(result).toMatchObject({ type: 'result', ok: false, exitCode: ExitCode.targetRefused });
    expect(String(result.error)).toMatch(/without confirmation/);
  });

  it('flash exits 2 for a corrupt image', async () => {
    const bad = join(dir, 'bad.img.gz');
    await writeFile(bad, Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]));
    const run = await runMemu(memu, ['flash', bad, join(dir, 'never.img')]);
    expect(run.code).toBe(ExitCode.badInput);
    expect(run.stderr).toMatch(/truncated or corrupt/);
  });

  it.skipIf(!hasLoop)('devices lists drives with model, size and transport, and marks refused ones with the reason', async () => {
    const disk = await loopDisk('listed', 32 * MiB);
    const json = await runMemu(memu, ['--json', 'devices']);
    expect(json.code, json.stderr).toBe(0);
    const { devices } = JSON.parse(json.stdout) as { devices: BlockDevice[] };
    expect(devices.find((d) => d.path === disk.device)).toMatchObject({ sizeBytes: 32 * MiB, transport: 'loop', model: disk.backing, removable: false });
    expect(devices.find((d) => d.path === disk.device)?.refusal).toBeUndefined();
    if (rootIsBlockDevice) expect(devices.find((d) => d.system)?.refusal).toMatch(/running system/);

    const table = await runMemu(memu, ['devices']);
    expect(table.stdout).toMatch(/PATH\s+SIZE\s+MODEL\s+SERIAL\s+TRAN\s+REMOVABLE\s+MOUNTED\s+STATUS/);
    expect(table.stdout).toContain(disk.device);
    if (rootIsBlockDevice) expect(table.stdout).toMatch(/REFUSED: holds the running system/);
  });
});
