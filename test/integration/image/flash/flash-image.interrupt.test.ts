import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { flashImage } from '../../../../image/flash/index.ts';
import {
  attachLoop,
  compressImage,
  createBmap,
  detachLoop,
  kernelHasLoopDevices,
  makeSparseImage,
  memuCommandLine,
  readRange,
  startMemu,
  throttleWrites,
  writeThrottleAvailable,
  type SparseImage,
} from '../../../helpers/flash-fixtures.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';

/*
 * A flash stopped half-way (Ctrl-C, kill -9) must leave a drive that neither boots nor
 * looks like a good one. The drive is a real loop device made slow by the kernel's block
 * throttle, so the signal lands while the image's data is being written; afterwards
 * sfdisk and blkid must find no partition table on it.
 */
const execFileAsync = promisify(execFile);
const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const targetBytes = 48 * MiB;
const hasLoop = prerequisite('loop devices (losetup -f)', kernelHasLoopDevices());
const canThrottle = prerequisite('a block-device write throttle (cgroup blkio.throttle or io.max)', writeThrottleAvailable());

let dir: string;
let image: SparseImage; // 32 MiB, half of it data, with a GPT: 16 MiB to write, 4 s at the throttle below
const loops: string[] = [];

async function freshDrive(name: string): Promise<string> {
  const backing = join(dir, `${name}.disk`);
  await writeFile(backing, '');
  await truncate(backing, targetBytes);
  const device = await attachLoop(backing);
  loops.push(device);
  return device;
}

/** `sfdisk --json`'s partition table, or undefined when it finds none. */
async function partitionTable(device: string): Promise<unknown> {
  return execFileAsync('sfdisk', ['--json', device]).then(
    ({ stdout }) => (JSON.parse(stdout) as { partitiontable: unknown }).partitiontable,
    () => undefined,
  );
}

/** What `blkid -p` (low-level probing, no cache) finds on the device; '' when nothing (its exit 2). */
async function blkidProbe(device: string): Promise<string> {
  return execFileAsync('blkid', ['-p', device]).then(
    ({ stdout }) => stdout.trim(),
    (err: { code?: number; stdout?: string }) => {
      if (err.code === 2) return '';
      throw err;
    },
  );
}

async function gptHeaderAt(device: string, offset: number): Promise<boolean> {
  return (await readRange(device, offset, 8)).toString('latin1') === 'EFI PART';
}

/** Every place a GPT header could be found: after the MBR, where the image's backup goes, at the drive's end. */
async function gptHeaders(device: string): Promise<boolean[]> {
  return Promise.all([512, image.sizeBytes - 512, targetBytes - 512].map((at) => gptHeaderAt(device, at)));
}

/**
 * A drive that was flashed and then booted: first boot moved the backup GPT to the
 * drive's end (as the agent does), and sfdisk leaves the old backup header where it was.
 */
async function previouslyFlashedDrive(name: string): Promise<string> {
  const device = await freshDrive(name);
  await flashImage({ image: image.path, target: device, yes: true, log });
  await execFileAsync('sfdisk', ['-q', '--relocate', 'gpt-bak-std', device]);
  expect(await partitionTable(device), 'the drive starts out with a good partition table').toBeDefined();
  expect(await gptHeaders(device)).toEqual([true, true, true]);
  return device;
}

/** Starts `memu --json flash --yes IMAGE DEVICE` with writes to DEVICE throttled, and waits until data is being written. */
async function flashSlowly(source: string, device: string, extraArgs: string[] = []) {
  const throttle = await throttleWrites(device, 4 * MiB);
  const memu = startMemu([...extraArgs, 'flash', '--yes', source, device], { wrap: throttle.wrap });
  const exited = memu.exited.finally(() => throttle.remove());
  return { memu, exited };
}

/** kill -9 of a slow flash once its data is being written. */
async function killWhileWriting(source: string, device: string): Promise<void> {
  const { memu, exited } = await flashSlowly(source, device, ['--json']);
  await memu.waitForLine(writing);
  memu.signalGroup('SIGKILL');
  expect((await exited).signal).toBe('SIGKILL');
}

const writing = (l: Record<string, unknown>): boolean => l.type === 'progress' && l.stage === 'write' && l.event === 'progress' && Number(l.bytes) > 0;

async function expectNoPartitionTable(device: string): Promise<void> {
  expect(await partitionTable(device), 'sfdisk finds no partition table').toBeUndefined();
  expect(await blkidProbe(device), 'blkid finds nothing').toBe('');
  expect(await gptHeaders(device)).toEqual([false, false, false]);
}

beforeAll(async () => {
  dir = await mkdtemp('/var/tmp/memu-flash-interrupt-');
  image = await makeSparseImage(join(dir, 'memu.img'), { sizeBytes: 32 * MiB, mappedFraction: 0.5, seed: 11 });
  await execFileAsync('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=16384, type=L\\n' | sfdisk -q '${image.path}'`]);
  await createBmap(image.path);
  await compressImage(image.path, 'zstd');
}, 120_000);

afterAll(async () => {
  for (const l of loops) await detachLoop(l);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hasLoop || !canThrottle)('a flash stopped half-way leaves no partition table', () => {
  it('Ctrl-C (SIGINT to the process group, decompressor included): says so, ends with the JSON result, exit 130; flashing again works', async () => {
    const device = await previouslyFlashedDrive('sigint');
    const { memu, exited } = await flashSlowly(`${image.path}.zst`, device, ['--json']);
    await memu.waitForLine(writing);
    memu.signalGroup('SIGINT');
    const run = await exited;
    expect(run.code, run.stderr.slice(-2000)).toBe(ExitCode.interrupted);
    const last = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({
      type: 'result',
      command: 'flash',
      ok: false,
      exitCode: 130,
      error: `interrupted: ${device} is incomplete and will not boot; flash it again`,
    });
    await expectNoPartitionTable(device);

    const again = await flashImage({ image: `${image.path}.zst`, target: device, yes: true, log });
    expect(again.verified).toBe(true);
    expect(await partitionTable(device)).toBeDefined();
  });

  it('SIGINT without --json: the message is printed once, exit 130', async () => {
    const device = await previouslyFlashedDrive('sigint-text');
    const { memu, exited } = await flashSlowly(image.path, device, ['--log-level', 'info']);
    // Without --json, progress goes to stderr as log lines: the write stage has started.
    await memu.waitForStderr(/"stage":"write"/);
    process.kill(memu.pid, 'SIGINT');
    const run = await exited;
    expect(run.code).toBe(ExitCode.interrupted);
    expect(run.stderr.split('is incomplete and will not boot; flash it again').length - 1).toBe(1);
    expect(run.stdout).toBe('');
    await expectNoPartitionTable(device);
  });

  it('a second Ctrl-C quits at once, and the drive still has no partition table', async () => {
    const device = await previouslyFlashedDrive('sigint-twice');
    const { memu, exited } = await flashSlowly(image.path, device, ['--json']);
    await memu.waitForLine(writing);
    memu.signalGroup('SIGINT');
    await memu.waitForStderr(/Ctrl-C again to quit at once/);
    memu.signalGroup('SIGINT');
    const run = await exited;
    expect(run.signal).toBe('SIGINT');
    expect(run.stdout).not.toContain('"type":"result"');
    await expectNoPartitionTable(device);
  });

  it('kill -9 of a flash over a good drive: the old partition tables were cleared before any data went on', async () => {
    const device = await previouslyFlashedDrive('sigkill-old');
    await killWhileWriting(image.path, device);
    await expectNoPartitionTable(device);
  });

  it("kill -9 of a flash onto an empty drive: the image's own partition table had not been written yet", async () => {
    const device = await freshDrive('sigkill-fresh');
    await killWhileWriting(`${image.path}.zst`, device);
    await expectNoPartitionTable(device);
  });
});

describe.skipIf(!hasLoop)('an interruption before anything is written', () => {
  it('Ctrl-C at the question on a terminal: nothing written, exit 130', async () => {
    const device = await previouslyFlashedDrive('at-question');
    // script(1) gives memu a real terminal; Ctrl-C is the byte 0x03 typed into it.
    const command = [...memuCommandLine, 'flash', image.path, device].map((a) => `'${a}'`).join(' ');
    const child = spawn('script', ['-qefc', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const asked = new Promise<void>((resolve) =>
      child.stdout.setEncoding('utf8').on('data', (s: string) => {
        output += s;
        if (output.includes('Type the drive name')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await asked;
    expect(output).toContain(`drive:   ${device}`);
    child.stdin.write('\x03');
    expect(await exited, output).toBe(ExitCode.interrupted);
    expect(output).toContain(`interrupted: nothing was written to ${device}`);
    expect(await partitionTable(device)).toBeDefined();
  });

  it('leaves the drive as it was and says nothing was written', async () => {
    const device = await previouslyFlashedDrive('before');
    const controller = new AbortController();
    const err = await flashImage({
      image: image.path,
      target: device,
      log,
      signal: controller.signal,
      // Ctrl-C while the question is asked.
      confirm: async () => (controller.abort(), false),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MemuError);
    expect(err).toMatchObject({ exitCode: ExitCode.interrupted, message: `interrupted: nothing was written to ${device}` });
    expect(await partitionTable(device)).toBeDefined();
  });
});
