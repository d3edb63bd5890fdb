import { execFile, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rmdir, truncate, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/**
 * Fixtures for flasher tests and the flash benchmark: sparse disk images of
 * realistic fill (scattered extents, half random and half compressible data),
 * their bmaps from the real `bmaptool create`, compressed copies from the real
 * zstd/xz/gzip, and loop devices.
 */

export interface Extent {
  start: number;
  length: number;
}

export interface SparseImage {
  path: string;
  sizeBytes: number;
  extents: Extent[];
  mappedBytes: number;
}

const block = 4096;

/** A small deterministic PRNG (mulberry32), so a seed gives the same layout every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Scattered, block-aligned, non-adjacent extents covering about `fraction` of `size`; the first block is always mapped (like a partition table). */
export function layoutExtents(sizeBytes: number, fraction: number, seed = 1): Extent[] {
  const rand = prng(seed);
  const blocks = Math.floor(sizeBytes / block);
  const wanted = Math.max(1, Math.round(blocks * fraction));
  const lengths: number[] = [];
  let sum = 0;
  while (sum < wanted) {
    // Log-uniform between 1 block (metadata) and 2048 blocks (8 MiB files).
    const len = Math.min(wanted - sum, Math.max(1, Math.round(Math.exp(rand() * Math.log(2048)))));
    lengths.push(len);
    sum += len;
  }
  // Spread the free blocks over the gaps between extents (each gap at least one block).
  const free = blocks - sum;
  const gaps = lengths.length;
  if (free < gaps) throw new Error(`cannot scatter ${gaps} extents in ${blocks} blocks`);
  const weights = lengths.map(() => rand() + 0.05);
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const extents: Extent[] = [];
  let at = 0;
  let freeLeft = free;
  for (let i = 0; i < lengths.length; i++) {
    if (i > 0) {
      const gap = Math.max(1, Math.min(freeLeft - (gaps - i), Math.floor((free * weights[i]!) / weightSum)));
      at += gap;
      freeLeft -= gap;
    }
    extents.push({ start: at * block, length: lengths[i]! * block });
    at += lengths[i]!;
  }
  return extents;
}

/** Compressible bytes: random 16-byte tokens from a small vocabulary, like text or binaries. */
function fillCompressible(buf: Buffer, rand: () => number): void {
  const vocabulary = Buffer.alloc(256 * 16);
  randomFillSync(vocabulary);
  for (let off = 0; off < buf.length; off += 16) {
    const t = (rand() * 256) | 0;
    vocabulary.copy(buf, off, t * 16, t * 16 + Math.min(16, buf.length - off));
  }
}

/** Makes a sparse image: `truncate` to size, then data written at scattered extents. */
export async function makeSparseImage(path: string, opts: { sizeBytes: number; mappedFraction?: number; seed?: number }): Promise<SparseImage> {
  const extents = layoutExtents(opts.sizeBytes, opts.mappedFraction ?? 0.15, opts.seed ?? 1);
  const rand = prng((opts.seed ?? 1) + 7);
  await truncate(path, 0).catch(() => {});
  const fh = await open(path, 'w');
  try {
    await fh.truncate(opts.sizeBytes);
    const chunk = Buffer.alloc(8 << 20);
    for (const [i, x] of extents.entries()) {
      for (let pos = 0; pos < x.length; pos += chunk.length) {
        const n = Math.min(chunk.length, x.length - pos);
        const view = chunk.subarray(0, n);
        if (i % 2 === 0) randomFillSync(view);
        else fillCompressible(view, rand);
        await fh.write(view, 0, n, x.start + pos);
      }
    }
  } finally {
    await fh.close();
  }
  return { path, sizeBytes: opts.sizeBytes, extents, mappedBytes: extents.reduce((n, x) => n + x.length, 0) };
}

/** Runs the real `bmaptool create`, as the image build does. */
export async function createBmap(imagePath: string, bmapPath = `${imagePath}.bmap`): Promise<string> {
  await execFileAsync('bmaptool', ['create', '-o', bmapPath, imagePath]);
  return bmapPath;
}

export type CompressionTool = 'zstd' | 'xz' | 'gzip';

/** Compresses `imagePath` next to itself with the Debian tool, keeping the original. */
export async function compressImage(imagePath: string, tool: CompressionTool): Promise<string> {
  const out = `${imagePath}.${tool === 'zstd' ? 'zst' : tool === 'xz' ? 'xz' : 'gz'}`;
  const args = tool === 'zstd' ? ['-q', '-f', '-T0', '-3', '-k', imagePath] : tool === 'xz' ? ['-q', '-f', '-T0', '-1', '-k', imagePath] : ['-q', '-f', '-1', '-k', imagePath];
  await execFileAsync(tool, args);
  return out;
}

export async function sha256OfRange(path: string, start: number, length: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const hash = createHash('sha256');
    const buf = Buffer.alloc(4 << 20);
    for (let pos = start; pos < start + length; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, start + length - pos), pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

export async function readRange(path: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Fills a file or device with a repeating marker pattern, to show which bytes a flash left alone. */
export async function fillWithPattern(path: string, sizeBytes: number, pattern = 'MEMU-UNTOUCHED-'): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const unit = Buffer.from(pattern);
    const chunk = Buffer.alloc(4 << 20);
    for (let i = 0; i < chunk.length; i += unit.length) unit.copy(chunk, i);
    // Keep the pattern phase tied to the absolute offset by writing chunk-sized steps from 0.
    for (let pos = 0; pos < sizeBytes; pos += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, sizeBytes - pos), pos);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Whether the kernel offers loop devices at all; tests pass this to prerequisite(). */
export function kernelHasLoopDevices(): boolean {
  if (existsSync('/dev/loop-control')) return true;
  try {
    return /\bloop\b/.test(readFileSync('/proc/devices', 'utf8'));
  } catch {
    return false;
  }
}

/** Attaches a file as a loop device (with partition scanning, or read-only); fails loudly when losetup does. */
export async function attachLoop(file: string, opts: { partscan?: boolean; readOnly?: boolean } = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync('losetup', ['-f', '--show', ...(opts.partscan ? ['-P'] : []), ...(opts.readOnly ? ['-r'] : []), file]);
    return stdout.trim();
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`losetup could not attach ${file} although the kernel has loop devices: ${(e.stderr ?? e.message).trim()} (run the tests as root)`);
  }
}

export async function detachLoop(device: string): Promise<void> {
  await execFileAsync('losetup', ['-d', device]).catch(() => {});
}

const repoRoot = new URL('../../', import.meta.url).pathname;

/** The command line that runs the real `memu` CLI. */
export const memuCommandLine: string[] = [process.execPath, `${repoRoot}bin/memu.mjs`];

/** A `memu` process the test can watch line by line and signal, like a person at a terminal. */
export interface RunningMemu {
  pid: number;
  /** Resolves with the first stdout line (parsed JSON) that `match` accepts. */
  waitForLine(match: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves once stderr (logs, without --json) has matched `pattern`. */
  waitForStderr(pattern: RegExp): Promise<void>;
  /** Sends `signal` to memu's whole process group, as Ctrl-C on a terminal does (the decompressor gets it too). */
  signalGroup(signal: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `memu ARGS` (optionally through `wrap`, e.g. a write throttle) in its own process group. */
export function startMemu(args: string[], opts: { wrap?: (command: string[]) => string[] } = {}): RunningMemu {
  const full = (opts.wrap ?? ((c: string[]) => c))([...memuCommandLine, ...args]);
  const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ match: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }> = [];
  const stderrWaiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    pending += s;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      for (const w of [...waiters]) {
        if (w.match(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    stderr += s;
    for (const w of [...stderrWaiters]) {
      if (w.pattern.test(stderr)) {
        stderrWaiters.splice(stderrWaiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const exitedEarly = (what: string, r: { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }): Error =>
    new Error(`memu exited (${r.code ?? r.signal}) before ${what}:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return {
    pid: child.pid!,
    waitForLine: (match) =>
      new Promise((resolve, reject) => {
        waiters.push({ match, resolve });
        void exited.then((r) => reject(exitedEarly('printing the line waited for', r)));
      }),
    waitForStderr: (pattern) =>
      new Promise((resolve, reject) => {
        if (pattern.test(stderr)) return resolve();
        stderrWaiters.push({ pattern, resolve });
        void exited.then((r) => reject(exitedEarly(`logging ${pattern}`, r)));
      }),
    signalGroup: (signal) => process.kill(-child.pid!, signal),
    exited,
  };
}

/**
 * Another program holding `device` open exclusively (O_EXCL), as a partitioning tool,
 * a second flasher or a mount in another namespace does; released by `release()`.
 */
export async function holdExclusively(device: string): Promise<{ release: () => Promise<void> }> {
  const script = `const fs = require('node:fs'); fs.openSync(process.argv[1], fs.constants.O_RDONLY | fs.constants.O_EXCL); process.stdout.write('held\\n'); setInterval(() => {}, 1e9);`;
  const child = spawn(process.execPath, ['-e', script, device], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const gone = new Promise<void>((resolve) => child.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    void gone.then(() => reject(new Error(`could not hold ${device} open exclusively: ${stderr.trim()}`)));
  });
  return {
    release: async () => {
      child.kill('SIGKILL');
      await gone;
    },
  };
}

const blkioV1 = '/sys/fs/cgroup/blkio';
const cgroupV2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';

/** Whether the kernel can throttle a process's writes to a block device (cgroup v1 blkio, or v2 io.max). */
export function writeThrottleAvailable(): boolean {
  if (existsSync(`${blkioV1}/blkio.throttle.write_bps_device`)) return true;
  try {
    return readFileSync(`${cgroupV2}/cgroup.controllers`, 'utf8').split(/\s+/).includes('io');
  } catch {
    return false;
  }
}

let throttles = 0;

/**
 * A slow drive made from a real one: the kernel's block throttle limits writes to
 * `device` by processes in a new cgroup to `bytesPerSecond`. `wrap` turns a command
 * line into one that joins the cgroup before it runs, so every write it and its
 * children make is throttled from the first.
 */
export async function throttleWrites(device: string, bytesPerSecond: number): Promise<{ wrap: (command: string[]) => string[]; remove: () => Promise<void> }> {
  const { stdout } = await execFileAsync('lsblk', ['-dno', 'MAJ:MIN', device]);
  const majMin = stdout.trim();
  let dir: string;
  if (existsSync(`${blkioV1}/blkio.throttle.write_bps_device`)) {
    dir = `${blkioV1}/memu-test-throttle-${process.pid}-${throttles++}`;
    await mkdir(dir);
    await writeFile(`${dir}/blkio.throttle.write_bps_device`, `${majMin} ${bytesPerSecond}\n`);
  } else {
    await writeFile(`${cgroupV2}/cgroup.subtree_control`, '+io\n');
    dir = `${cgroupV2}/memu-test-throttle-${process.pid}-${throttles++}`;
    await mkdir(dir);
    await writeFile(`${dir}/io.max`, `${majMin} wbps=${bytesPerSecond}\n`);
  }
  return {
    wrap: (command) => ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...command],
    remove: async () => {
      // A cgroup can be removed once its last process has gone.
      for (let i = 0; i < 100; i++) {
        try {
          await rmdir(dir);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      await rmdir(dir);
    },
  };
}
