import { read } from 'node:fs';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { BmapChecksumType } from '../disk/bmap.ts';
import type { IoBuffer } from './aligned-buffers.ts';
import type { BackgroundHasher, RunningHash } from './background-hasher.ts';
import { spawnDecompressor, type Compression } from './compression.ts';
import type { WritePipeline } from './target.ts';

/** A byte range of the image to write, with the bmap's checksum when it has one. */
export interface PlannedRange {
  start: number;
  length: number;
  checksum?: string;
  /** Block numbers as the bmap names them, for messages. */
  blocks?: string;
}

/** What was written, and what its bytes must hash to when that was needed; verification reads these back. */
export interface WrittenExtent {
  start: number;
  length: number;
  algorithm: BmapChecksumType;
  /** The bmap's checksum, or the digest computed while writing; absent when nothing asked for one (a raw image without checksums is verified byte for byte). */
  digest?: string;
}

export type ImageInput = { kind: 'raw'; path: string; fd: number; size: number } | { kind: 'stream'; path: string; compression: Exclude<Compression, 'none'> };

export interface WritePlan {
  /** Mapped ranges from a bmap, or undefined to write every block that is not all zeros. */
  ranges?: PlannedRange[];
  checksumType?: BmapChecksumType;
  /** Expected image size (from the bmap or the file); a stream of another length is an error. */
  imageSize?: number;
  /** bmap path, for messages. */
  bmapPath?: string;
}

/** Zero detection granularity: the filesystem block size of every image we build. */
const zeroBlock = 4096;

export function preadFully(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = 0;
    const step = (): void => {
      read(fd, buf, done, length - done, position + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return resolve(done);
        done += n;
        if (done >= length) resolve(done);
        else step();
      });
    };
    step();
  });
}

/** Non-zero runs of whole blocks in `view[0..length)`, as [offset, length] pairs. */
export function nonZeroRuns(view: Buffer, length: number, zeros: Buffer): Array<[number, number]> {
  if (view.compare(zeros, 0, length, 0, length) === 0) return [];
  const runs: Array<[number, number]> = [];
  let runStart = -1;
  for (let off = 0; off < length; off += zeroBlock) {
    const end = Math.min(off + zeroBlock, length);
    const zero = view.compare(zeros, 0, end - off, off, end) === 0;
    if (!zero && runStart < 0) runStart = off;
    if (zero && runStart >= 0) {
      runs.push([runStart, off - runStart]);
      runStart = -1;
    }
  }
  if (runStart >= 0) runs.push([runStart, length - runStart]);
  return runs;
}

/**
 * Collects written data into contiguous extents for verification without a bmap,
 * hashing each on the background hasher when the verification will need digests.
 */
class ExtentRecorder {
  readonly extents: WrittenExtent[] = [];
  private readonly digests: Array<Promise<void>> = [];
  private current: { start: number; length: number; hash?: RunningHash } | undefined;

  constructor(private readonly hasher: BackgroundHasher | undefined) {}

  /** Records `data` as written at `position`; resolves when its buffer may be reused. */
  add(position: number, data: Buffer): Promise<void> | undefined {
    if (!this.current || this.current.start + this.current.length !== position) {
      this.close();
      this.current = { start: position, length: 0, ...(this.hasher ? { hash: this.hasher.begin('sha256') } : {}) };
    }
    this.current.length += data.length;
    return this.current.hash ? this.hasher!.update(this.current.hash, data) : undefined;
  }

  close(): void {
    if (!this.current) return;
    const { start, length, hash } = this.current;
    const extent: WrittenExtent = { start, length, algorithm: 'sha256' };
    this.extents.push(extent);
    if (hash) this.digests.push(this.hasher!.digest(hash).then((d) => void (extent.digest = d)));
    this.current = undefined;
  }

  /** The extents, once every digest is known. */
  async finish(): Promise<WrittenExtent[]> {
    this.close();
    await Promise.all(this.digests);
    return this.extents;
  }
}

function bmapMismatch(plan: WritePlan, detail: string): MemuError {
  return new MemuError(
    `the bmap ${plan.bmapPath ?? ''} does not match the image: ${detail}`,
    ExitCode.badInput,
    'the image or its .bmap is corrupt, or they come from different builds: use the pair from one build (the target now holds a partial image; flash again)',
  );
}

interface FilledChunk {
  buf: IoBuffer;
  length: number;
  position: number;
  /** Index into plan.ranges; -1 when zero-detecting. */
  range: number;
  /** Last chunk of its range. */
  last: boolean;
}

/**
 * Writes the image's data to the target through `pipeline`: only the bmap's
 * ranges when there is a bmap, otherwise every block that is not all zeros.
 * Checks each range against the bmap's checksum on the way (hashing on the
 * background hasher while the I/O goes on), and returns the extents to verify.
 * Raw images are read at the mapped offsets only; compressed ones stream from a
 * decompressor process running alongside. `digestsNeeded`: verification will
 * compare digests (compressed images), so extents without a bmap checksum are
 * hashed too.
 */
export async function writeImage(
  input: ImageInput,
  plan: WritePlan,
  pipeline: WritePipeline,
  opts: { chunkBytes: number; readAhead: number; hasher: BackgroundHasher; digestsNeeded: boolean; onImageBytes?: (bytes: number) => void; signal?: AbortSignal },
): Promise<{ extents: WrittenExtent[]; imageBytes: number }> {
  const zeros = Buffer.alloc(opts.chunkBytes);
  const { hasher } = opts;
  const recorder = new ExtentRecorder(opts.digestsNeeded ? hasher : undefined);
  const ranges = plan.ranges;
  const extents: WrittenExtent[] = [];
  const rangeChecks: Array<Promise<void>> = [];
  let rangeHash: RunningHash | undefined;

  const consume = (c: FilledChunk): void => {
    const data = c.buf.view.subarray(0, c.length);
    if (!ranges) {
      const runs = nonZeroRuns(c.buf.view, c.length, zeros);
      if (runs.length === 0) return pipeline.pool.release(c.buf);
      const hashed = runs.map(([off, len]) => recorder.add(c.position + off, data.subarray(off, off + len)));
      pipeline.submit(c.buf, runs.map(([off, len]) => ({ bufferOffset: off, length: len, position: c.position + off })), Promise.all(hashed));
      return;
    }
    const range = ranges[c.range]!;
    const algorithm = plan.checksumType ?? 'sha256';
    let hashed: Promise<void> | undefined;
    if (range.checksum || opts.digestsNeeded) {
      rangeHash ??= hasher.begin(algorithm);
      hashed = hasher.update(rangeHash, data);
    }
    if (c.last) {
      const extent: WrittenExtent = { start: range.start, length: range.length, algorithm, ...(range.checksum ? { digest: range.checksum } : {}) };
      extents.push(extent);
      if (rangeHash) {
        const check = hasher.digest(rangeHash).then((digest) => {
          if (range.checksum && digest !== range.checksum) {
            throw bmapMismatch(plan, `blocks ${range.blocks ?? '?'} (bytes ${range.start}-${range.start + range.length - 1}) hash to ${digest}, the bmap says ${range.checksum}`);
          }
          extent.digest = digest;
        });
        // A mismatch stops the writing at the next buffer; the await below reports it in any case.
        check.catch((err: unknown) => pipeline.fail(err));
        rangeChecks.push(check);
        rangeHash = undefined;
      }
    }
    pipeline.submit(c.buf, [{ bufferOffset: 0, length: c.length, position: c.position }], hashed);
  };

  let imageBytes: number;
  if (input.kind === 'raw') imageBytes = await writeFromFile(input, plan, pipeline, consume, opts);
  else imageBytes = await writeFromStream(input, plan, pipeline, consume, opts);
  if (!ranges) return { extents: await recorder.finish(), imageBytes };
  await Promise.all(rangeChecks);
  return { extents, imageBytes };
}

async function writeFromFile(
  input: Extract<ImageInput, { kind: 'raw' }>,
  plan: WritePlan,
  pipeline: WritePipeline,
  consume: (c: FilledChunk) => void,
  opts: { chunkBytes: number; readAhead: number; onImageBytes?: (bytes: number) => void; signal?: AbortSignal },
): Promise<number> {
  const spans = plan.ranges ?? [{ start: 0, length: input.size }];
  const queue: Array<FilledChunk & { read: Promise<number> }> = [];
  const takeOne = async (): Promise<void> => {
    const c = queue.shift()!;
    let n: number;
    try {
      n = await c.read;
    } catch (err) {
      pipeline.pool.release(c.buf);
      throw new MemuError(`reading the image ${input.path} failed at byte ${c.position}: ${(err as Error).message}`, ExitCode.badInput, 'check the disk holding the image');
    }
    if (n < c.length) {
      pipeline.pool.release(c.buf);
      throw bmapMismatch(plan, `the image ends at byte ${c.position + n}, inside a mapped range`);
    }
    if (!plan.ranges) opts.onImageBytes?.(c.position + c.length);
    consume(c);
  };
  try {
    for (let r = 0; r < spans.length; r++) {
      const span = spans[r]!;
      const end = span.start + span.length;
      for (let pos = span.start; pos < end; pos += opts.chunkBytes) {
        opts.signal?.throwIfAborted();
        const length = Math.min(opts.chunkBytes, end - pos);
        const buf = await pipeline.acquire();
        const readPromise = preadFully(input.fd, buf.view, length, pos);
        readPromise.catch(() => {});
        queue.push({ buf, length, position: pos, range: plan.ranges ? r : -1, last: pos + length >= end, read: readPromise });
        if (queue.length > opts.readAhead) await takeOne();
      }
    }
    while (queue.length > 0) await takeOne();
  } catch (err) {
    await Promise.allSettled(queue.map((q) => q.read));
    throw err;
  }
  return input.size;
}

async function writeFromStream(
  input: Extract<ImageInput, { kind: 'stream' }>,
  plan: WritePlan,
  pipeline: WritePipeline,
  consume: (c: FilledChunk) => void,
  opts: { chunkBytes: number; onImageBytes?: (bytes: number) => void; signal?: AbortSignal },
): Promise<number> {
  const { child, exited } = spawnDecompressor(input.path, input.compression);
  const ranges = plan.ranges;
  let position = 0;
  let rangeIndex = 0;
  let current: FilledChunk | undefined;
  let completedRanges = 0;
  let lastReport = 0;
  try {
    for await (const piece of child.stdout as AsyncIterable<Buffer>) {
      opts.signal?.throwIfAborted();
      let offset = 0;
      while (offset < piece.length) {
        const p = position + offset;
        if (!ranges) {
          current ??= { buf: await pipeline.acquire(), length: 0, position: p, range: -1, last: false };
          const n = Math.min(opts.chunkBytes - current.length, piece.length - offset);
          piece.copy(current.buf.view, current.length, offset, offset + n);
          current.length += n;
          offset += n;
          if (current.length === opts.chunkBytes) {
            const c = current;
            current = undefined;
            consume(c);
          }
          continue;
        }
        while (rangeIndex < ranges.length && ranges[rangeIndex]!.start + ranges[rangeIndex]!.length <= p) rangeIndex++;
        const range = ranges[rangeIndex];
        if (!range) break; // past the last mapped range: the rest only needs counting
        if (p < range.start) {
          offset += Math.min(range.start - p, piece.length - offset);
          continue;
        }
        const rangeEnd = range.start + range.length;
        current ??= { buf: await pipeline.acquire(), length: 0, position: p, range: rangeIndex, last: false };
        const n = Math.min(opts.chunkBytes - current.length, rangeEnd - p, piece.length - offset);
        piece.copy(current.buf.view, current.length, offset, offset + n);
        current.length += n;
        offset += n;
        const reachedEnd = current.position + current.length === rangeEnd;
        if (current.length === opts.chunkBytes || reachedEnd) {
          const c = current;
          current = undefined;
          c.last = reachedEnd;
          if (reachedEnd) completedRanges++;
          consume(c);
        }
      }
      position += piece.length;
      if (!ranges && position - lastReport >= opts.chunkBytes) {
        lastReport = position;
        opts.onImageBytes?.(position);
      }
    }
    await exited;
  } catch (err) {
    child.kill('SIGTERM');
    await exited.catch(() => {});
    if (current) pipeline.pool.release(current.buf);
    throw err;
  }
  if (!ranges) {
    if (current) consume(current);
    if (plan.imageSize !== undefined && position !== plan.imageSize) {
      throw new MemuError(`${input.path} decompresses to ${position} bytes, but ${plan.imageSize} were expected`, ExitCode.badInput, 'the image is damaged: build or download it again');
    }
    opts.onImageBytes?.(position);
    return position;
  }
  if (current || completedRanges < ranges.length) {
    if (current) pipeline.pool.release(current.buf);
    throw bmapMismatch(plan, `the image ends at byte ${position}, but the bmap maps data up to byte ${ranges.at(-1)!.start + ranges.at(-1)!.length}`);
  }
  if (plan.imageSize !== undefined && position !== plan.imageSize) {
    throw bmapMismatch(plan, `the image is ${position} bytes, the bmap says ${plan.imageSize}`);
  }
  return position;
}
