import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { runCommandOutcome, startProcess } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/** How an image file is stored. */
export type Compression = 'none' | 'zstd' | 'xz' | 'gzip';

const suffixes: Array<[string, Compression]> = [
  ['.zst', 'zstd'],
  ['.zstd', 'zstd'],
  ['.xz', 'xz'],
  ['.gz', 'gzip'],
];

/** Debian tools that decompress to stdout; each runs as its own process, so decompression overlaps writing. */
const decompressors: Record<Exclude<Compression, 'none'>, { command: string; args: string[]; debianPackage: string }> = {
  zstd: { command: 'zstd', args: ['-dc', '--no-progress'], debianPackage: 'zstd' },
  xz: { command: 'xz', args: ['-dc', '-T0'], debianPackage: 'xz-utils' },
  gzip: { command: 'gzip', args: ['-dc'], debianPackage: 'gzip' },
};

export function compressionFromName(path: string): Compression {
  const lower = path.toLowerCase();
  return suffixes.find(([suffix]) => lower.endsWith(suffix))?.[1] ?? 'none';
}

/** The image's name without its compression suffix: `memu.img.zst` → `memu.img`. */
export function stripCompressionSuffix(path: string): string {
  const lower = path.toLowerCase();
  const match = suffixes.find(([suffix]) => lower.endsWith(suffix));
  return match ? path.slice(0, path.length - match[0].length) : path;
}

/**
 * Where a bmap beside an image may be, in the order they are tried: `memu build` names
 * it after the image without `.img` (`memu-pi5-1.0.bmap` beside `memu-pi5-1.0.img.zst`),
 * bmaptool's habit is the uncompressed image's name plus `.bmap` (`memu.img.bmap`).
 */
export function bmapCandidates(imagePath: string): string[] {
  const uncompressed = stripCompressionSuffix(imagePath);
  const candidates = [`${uncompressed.replace(/\.img$/i, '')}.bmap`, `${uncompressed}.bmap`];
  return [...new Set(candidates)];
}

function compressionFromMagic(head: Buffer): Compression {
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  return 'none';
}

/**
 * The image's compression, from its content, cross-checked with its name so a
 * mislabelled file is caught before anything is written.
 */
export async function detectCompression(path: string): Promise<Compression> {
  const fd = await open(path, 'r');
  const head = Buffer.alloc(8);
  let bytesRead: number;
  try {
    ({ bytesRead } = await fd.read(head, 0, head.length, 0));
  } finally {
    await fd.close();
  }
  const byContent = compressionFromMagic(head.subarray(0, bytesRead));
  const byName = compressionFromName(path);
  if (byName !== 'none' && byContent !== byName) {
    throw new MemuError(
      `${path} is named like a ${byName} file but does not start like one${byContent === 'none' ? '' : ` (it looks like ${byContent})`}: it is corrupt or mislabelled`,
      ExitCode.badInput,
      'download or build the image again, or rename it to match its content',
    );
  }
  return byContent;
}

/** A running decompressor: its stdout is the raw image. */
export interface DecompressorProcess {
  stdout: Readable;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts the decompressor for `path`; `exited` rejects with what went wrong (a damaged file, a missing tool). */
export function spawnDecompressor(path: string, compression: Exclude<Compression, 'none'>): { child: DecompressorProcess; exited: Promise<void> } {
  const tool = decompressors[compression];
  const { child, ended } = startProcess(tool.command, [...tool.args, '--', path]);
  const exited = ended.then((r) => {
    if (r.code === 0) return;
    if (r.notInstalled) {
      throw new MemuError(`${tool.command} is not installed; it is needed to read ${compression} images`, ExitCode.environment, `apt-get install ${tool.debianPackage}`);
    }
    if (r.signal === 'SIGTERM' || r.signal === 'SIGPIPE') throw new Error(`${tool.command} was stopped`);
    throw new MemuError(
      `${path} is truncated or corrupt: ${tool.command} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.trim().split('\n').slice(-3).join(' / ') || 'no message'}`,
      ExitCode.badInput,
      'the file is damaged: download or build the image again (compare its sha256 with the build manifest)',
    );
  });
  exited.catch(() => {});
  return { child: { stdout: child.stdout!, kill: (signal) => child.kill(signal) }, exited };
}

/**
 * The decompressed size, when the container records it reliably (zstd frames
 * written from a file, xz indexes). gzip's size field is modulo 4 GiB, so it is
 * never trusted. Undefined means "only decompressing tells".
 */
export async function declaredUncompressedSize(path: string, compression: Compression): Promise<number | undefined> {
  try {
    if (compression === 'zstd') {
      const { code, stdout } = await runCommandOutcome('zstd', ['-lv', '--', path]);
      const m = /Decompressed Size:.*\((\d+) B\)/.exec(stdout);
      return code === 0 && m ? Number(m[1]) : undefined;
    }
    if (compression === 'xz') {
      const { code, stdout } = await runCommandOutcome('xz', ['--robot', '--list', '--', path]);
      const totals = stdout.split('\n').find((l) => l.startsWith('totals\t'));
      const n = totals?.split('\t')[4];
      return code === 0 && n && /^\d+$/.test(n) ? Number(n) : undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}
