import { ExitCode, MemuError } from '../host/errors.ts';
import { formatBytes } from '../host/progress.ts';
import type { BackgroundHasher, RunningHash } from './background-hasher.ts';
import { readFully, type TargetIo } from './target.ts';
import { preadFully, type WrittenExtent } from './write-engine.ts';

/** Reads `length` bytes of the image at `start` (for pinpointing a difference). */
export type ImageRangeReader = (start: number, length: number) => Promise<Buffer>;

/**
 * What the read-back is checked against.
 * - `image-bytes`: a raw image, compared byte for byte. Its ranges were checked against
 *   the bmap's checksums as they were written, and the image is still in the page cache
 *   then, so this costs a memory copy instead of a second SHA-256 pass (which made the
 *   read-back CPU-bound: 0.16 s per 230 MiB here), and names the exact byte on a mismatch.
 * - `digests`: a compressed image, which cannot be re-read cheaply: each extent is hashed
 *   and compared with its digest (the bmap's, or the one computed while writing).
 */
export type VerifyAgainst = { kind: 'image-bytes'; imageFd: number } | { kind: 'digests'; readImage: ImageRangeReader };

interface Chunk {
  extent: number;
  position: number;
  length: number;
  last: boolean;
}

/**
 * Reads every written extent back from the target (past the page cache: the caller
 * opened it direct or dropped its cache) and checks it. Reads are pipelined `readAhead`
 * chunks ahead of the checking. A mismatch names the first differing byte.
 */
export async function verifyExtents(
  target: TargetIo,
  extents: WrittenExtent[],
  against: VerifyAgainst,
  opts: { chunkBytes: number; readAhead: number; hasher: BackgroundHasher; onBytes?: (verified: number) => void; signal?: AbortSignal },
): Promise<number> {
  const buffers = target.buffers;
  const chunks: Chunk[] = [];
  for (let e = 0; e < extents.length; e++) {
    const x = extents[e]!;
    for (let pos = x.start; pos < x.start + x.length; pos += opts.chunkBytes) {
      const length = Math.min(opts.chunkBytes, x.start + x.length - pos);
      chunks.push({ extent: e, position: pos, length, last: pos + length >= x.start + x.length });
    }
  }
  const depth = Math.max(1, Math.min(opts.readAhead, buffers.length));
  const imageBuffers = against.kind === 'image-bytes' ? Array.from({ length: depth }, () => Buffer.allocUnsafeSlow(opts.chunkBytes)) : [];
  const reads: Array<Promise<unknown>> = [];
  const start = (i: number): void => {
    const c = chunks[i]!;
    const b = buffers[i % depth]!;
    const p = Promise.all([
      readFully(target, b.view, c.length, c.position, b.direct),
      against.kind === 'image-bytes' ? readImageChunk(against.imageFd, imageBuffers[i % depth]!, c) : undefined,
    ]);
    p.catch(() => {});
    reads[i] = p;
  };
  for (let i = 0; i < Math.min(depth, chunks.length); i++) start(i);

  let hash: RunningHash | undefined;
  let verified = 0;
  try {
    for (let i = 0; i < chunks.length; i++) {
      opts.signal?.throwIfAborted();
      await reads[i];
      const c = chunks[i]!;
      const x = extents[c.extent]!;
      const actual = buffers[i % depth]!.view.subarray(0, c.length);
      if (against.kind === 'image-bytes') {
        const expected = imageBuffers[i % depth]!.subarray(0, c.length);
        if (!actual.equals(expected)) throw mismatch(target, x, c.position + firstDifferingByte(actual, expected));
      } else {
        hash ??= opts.hasher.begin(x.algorithm);
        await opts.hasher.update(hash, actual);
        if (c.last) {
          const digest = await opts.hasher.digest(hash);
          hash = undefined;
          if (x.digest === undefined) throw new Error(`no digest was recorded for bytes ${x.start}-${x.start + x.length - 1} to verify against`);
          if (digest !== x.digest) throw mismatch(target, x, await firstDifference(target, x, against.readImage).catch(() => undefined));
        }
      }
      // The buffers are checked; reuse them for the read `depth` chunks ahead.
      if (i + depth < chunks.length) start(i + depth);
      verified += c.length;
      opts.onBytes?.(verified);
    }
  } finally {
    await Promise.allSettled(reads);
  }
  return verified;
}

async function readImageChunk(imageFd: number, buf: Buffer, c: Chunk): Promise<void> {
  const n = await preadFully(imageFd, buf, c.length, c.position);
  if (n < c.length) throw new MemuError(`the image changed while it was flashed: it now ends at byte ${c.position + n}`, ExitCode.badInput, 'do not modify the image while flashing it; flash again');
}

function firstDifferingByte(a: Buffer, b: Buffer): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return 0;
}

function mismatch(target: TargetIo, extent: WrittenExtent, offset: number | undefined): MemuError {
  const where = `bytes ${extent.start}-${extent.start + extent.length - 1}`;
  const at = offset === undefined ? `in ${where}` : `at byte ${offset} (${formatBytes(offset)}; in the range ${where})`;
  return new MemuError(
    `verification failed: ${target.path} does not hold the image's data ${at}`,
    ExitCode.verifyFailed,
    'the drive did not keep what was written (failing, fake-capacity or removed too early): flash again, and if it fails again use another drive',
  );
}

/** Compares the target with the image over the extent, chunk by chunk; undefined if they agree now. */
async function firstDifference(target: TargetIo, extent: WrittenExtent, readImage: ImageRangeReader): Promise<number | undefined> {
  const step = 4 << 20;
  const b = target.buffers[0]!;
  for (let pos = extent.start; pos < extent.start + extent.length; pos += step) {
    const length = Math.min(step, extent.start + extent.length - pos, b.view.length);
    await readFully(target, b.view, length, pos, b.direct);
    const expected = await readImage(pos, length);
    const actual = b.view.subarray(0, length);
    if (!actual.equals(expected)) return pos + firstDifferingByte(actual, expected);
  }
  return undefined;
}
