import { createHash, type Hash } from 'node:crypto';
import { ExitCode, MemuError } from '../cli/exit-codes.ts';
import { formatBytes } from '../progress.ts';
import { readFully, type TargetIo } from './target.ts';
import type { WrittenExtent } from './write-engine.ts';

/** Reads `length` bytes of the image at `start` (for pinpointing a difference). */
export type ImageRangeReader = (start: number, length: number) => Promise<Buffer>;

/**
 * Reads every written extent back from the target and checks it against its
 * digest (the bmap's, or the image's computed while writing). Reads are
 * pipelined ahead of hashing. On a mismatch the first differing byte is found
 * by comparing with the image, and the error names it.
 */
export async function verifyExtents(
  target: TargetIo,
  extents: WrittenExtent[],
  opts: { chunkBytes: number; readAhead: number; onBytes?: (verified: number) => void; readImage: ImageRangeReader },
): Promise<number> {
  const buffers = target.buffers;
  const chunks: Array<{ extent: number; position: number; length: number; last: boolean }> = [];
  for (let e = 0; e < extents.length; e++) {
    const x = extents[e]!;
    for (let pos = x.start; pos < x.start + x.length; pos += opts.chunkBytes) {
      const length = Math.min(opts.chunkBytes, x.start + x.length - pos);
      chunks.push({ extent: e, position: pos, length, last: pos + length >= x.start + x.length });
    }
  }
  const depth = Math.max(1, Math.min(opts.readAhead, buffers.length));
  const reads: Array<Promise<void>> = [];
  const start = (i: number): void => {
    const c = chunks[i]!;
    const b = buffers[i % depth]!;
    const p = readFully(target, b.view, c.length, c.position, b.direct);
    p.catch(() => {});
    reads[i] = p;
  };
  for (let i = 0; i < Math.min(depth, chunks.length); i++) start(i);

  let hash: Hash | undefined;
  let verified = 0;
  try {
    for (let i = 0; i < chunks.length; i++) {
      await reads[i];
      const c = chunks[i]!;
      const x = extents[c.extent]!;
      hash ??= createHash(x.algorithm);
      hash.update(buffers[i % depth]!.view.subarray(0, c.length));
      // The buffer is hashed; reuse it for the read `depth` chunks ahead.
      if (i + depth < chunks.length) start(i + depth);
      verified += c.length;
      opts.onBytes?.(verified);
      if (c.last) {
        const digest = hash.digest('hex');
        hash = undefined;
        if (digest !== x.digest) throw await mismatch(target, x, opts.readImage);
      }
    }
  } finally {
    await Promise.allSettled(reads);
  }
  return verified;
}

async function mismatch(target: TargetIo, extent: WrittenExtent, readImage: ImageRangeReader): Promise<MemuError> {
  const where = `bytes ${extent.start}-${extent.start + extent.length - 1}`;
  let offset: number | undefined;
  try {
    offset = await firstDifference(target, extent, readImage);
  } catch {
    offset = undefined;
  }
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
    if (!actual.equals(expected)) {
      for (let i = 0; i < length; i++) if (actual[i] !== expected[i]) return pos + i;
    }
  }
  return undefined;
}
