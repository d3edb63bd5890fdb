import { constants, ftruncate } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import { formatBytes } from '../host/progress.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { BmapError, readBmapFile, type Bmap } from '../disk/bmap.ts';
import { describeTarget, refusalFor, unmountDevice, type BlockDevice } from './block-devices.ts';
import { bmapCandidates, declaredUncompressedSize, detectCompression, spawnDecompressor, type Compression } from './compression.ts';
import { closeTarget, dropTargetCache, openTargetForRead, openTargetForWrite, rereadPartitionTable, WritePipeline, type TargetKind } from './target.ts';
import { writeImage, type ImageInput, type WritePlan } from './write-engine.ts';
import { BackgroundHasher } from './background-hasher.ts';
import { verifyExtents, type ImageRangeReader, type VerifyAgainst } from './verify.ts';

export interface FlashOptions {
  image: string;
  target: string;
  /** A bmap to use; default: IMAGE minus its compression suffix + `.bmap`, when that exists. */
  bmap?: string;
  /** Read everything back past the page cache and check it (default true). */
  verify?: boolean;
  log: Logger;
  progress?: Progress;
  /** Writing a block device needs `yes` or a `confirm` that returns true. */
  yes?: boolean;
  confirm?: (device: BlockDevice) => Promise<boolean>;
  /** Unmount the target's mounted partitions first instead of refusing. */
  unmount?: boolean;
  /** Allow a partition (not a whole drive) as target. */
  allowPartition?: boolean;
  /** Use O_DIRECT where it helps: writes to drives, read-back of any target (default true). */
  direct?: boolean;
  testHooks?: { afterWrite?: (targetPath: string) => Promise<void> };
}

export interface FlashResult {
  ok: true;
  image: string;
  target: string;
  targetKind: TargetKind;
  bmap?: string;
  compression: Compression;
  imageSize: number;
  /** Bytes the image has data in (the bmap's mapped bytes, or the non-zero blocks). */
  mappedBytes: number;
  bytesWritten: number;
  seconds: number;
  writeSeconds: number;
  verifySeconds: number;
  verified: boolean;
  /** Whether writes bypassed the page cache with O_DIRECT (drives only; files are written buffered). */
  direct: boolean;
  /** Whether the read-back bypassed the page cache with O_DIRECT (else caches were dropped first). */
  verifiedDirect: boolean;
  /** Whether the kernel re-read the partition table (block devices only). */
  partitionTableReread?: boolean;
}

// I/O shape; MEMU_FLASH_CHUNK_KB, _BUFFERS, _READ_AHEAD, _SYNC_MB, _VERIFY_CHUNK_KB and
// _VERIFY_READ_AHEAD override it for measuring on new hardware.
const tuning = (name: string, fallback: number): number => Number(process.env[`MEMU_FLASH_${name}`] ?? fallback);
// 1 MiB requests, 8 ahead: the kernel splits larger ones anyway (an SD card's max_sectors_kb
// is 512-1024), and more of them in flight measured 15-20 % faster than 4 MiB x 3 here.
const chunkBytes = tuning('CHUNK_KB', 1024) * 1024;
const bufferCount = tuning('BUFFERS', 16);
const readAhead = tuning('READ_AHEAD', 8);
const syncEveryBytes = tuning('SYNC_MB', 64) * 1024 * 1024;
// The read-back has no writes to keep in step with: 2 MiB x 16 read a file target back in a
// median 0.37 s per 793 MiB here, against 0.55 s with the write shape (1 MiB x 8).
const verifyChunkBytes = tuning('VERIFY_CHUNK_KB', 2048) * 1024;
const verifyReadAhead = tuning('VERIFY_READ_AHEAD', 16);

const noProgress: Progress = { stage() {}, bytes() {}, done() {} };

async function resolveBmap(opts: FlashOptions, imagePath: string, log: Logger): Promise<{ path: string; bmap: Bmap } | undefined> {
  const explicit = opts.bmap !== undefined;
  let path: string;
  if (explicit) path = resolve(opts.bmap!);
  else {
    const candidates = bmapCandidates(imagePath);
    const found = (await Promise.all(candidates.map((p) => stat(p).then((s) => s.isFile(), () => false)))).indexOf(true);
    if (found < 0) {
      log.info({ looked: candidates }, 'no bmap beside the image: writing every non-zero block');
      return undefined;
    }
    path = candidates[found]!;
  }
  try {
    return { path, bmap: await readBmapFile(path) };
  } catch (err) {
    if (err instanceof BmapError) {
      throw new MemuError(`bad bmap: ${err.message}`, ExitCode.badInput, explicit ? 'pass the .bmap made by the same build as the image' : `remove or replace ${path}, or pass --bmap`);
    }
    throw err;
  }
}

/** Counts the decompressed bytes (only when the size matters and no header records it). */
async function countDecompressedBytes(path: string, compression: Exclude<Compression, 'none'>): Promise<number> {
  const { child, exited } = spawnDecompressor(path, compression);
  let n = 0;
  for await (const piece of child.stdout as AsyncIterable<Buffer>) n += piece.length;
  await exited;
  return n;
}

/** Reads a range of a compressed image by decompressing up to it (only to locate a mismatch). */
function compressedRangeReader(input: Extract<ImageInput, { kind: 'stream' }>): ImageRangeReader {
  return async (start, length) => {
    const { child, exited } = spawnDecompressor(input.path, input.compression);
    const out = Buffer.alloc(length);
    let pos = 0;
    let filled = 0;
    for await (const piece of child.stdout as AsyncIterable<Buffer>) {
      const from = Math.max(start - pos, 0);
      if (from < piece.length) filled += piece.copy(out, filled, from, Math.min(piece.length, from + length - filled));
      pos += piece.length;
      if (filled >= length) break;
    }
    child.kill('SIGTERM');
    await exited.catch(() => {});
    return out.subarray(0, filled);
  };
}

/**
 * Writes a built image to a drive or a file: only its data (by the bmap, or by
 * skipping zero blocks), decompressing on the fly, and — unless `verify` is
 * false — reads it back past the page cache to prove it. Refuses targets that
 * must not be written. Throws MemuError with the exit code for each failure.
 */
export async function flashImage(opts: FlashOptions): Promise<FlashResult> {
  let started = performance.now();
  const { log } = opts;
  const progress = opts.progress ?? noProgress;
  const verify = opts.verify ?? true;
  const imagePath = resolve(opts.image);

  const imageStat = await stat(imagePath).catch(() => undefined);
  if (!imageStat?.isFile()) throw new MemuError(`the image ${opts.image} does not exist or is not a file`, ExitCode.badInput, 'give the path of a built image (.img, .img.zst, .img.xz or .img.gz)');
  const compression = await detectCompression(imagePath);
  const bmap = await resolveBmap(opts, imagePath, log);

  // The image's size, before anything is written, so a too-small target is refused up front.
  let imageSize: number | undefined;
  if (compression === 'none') {
    imageSize = imageStat.size;
    if (bmap && bmap.bmap.imageSize !== imageSize) {
      throw new MemuError(`the bmap ${bmap.path} does not match the image: the image is ${imageSize} bytes, the bmap says ${bmap.bmap.imageSize}`, ExitCode.badInput, 'use the .bmap made by the same build as the image');
    }
  } else {
    imageSize = bmap?.bmap.imageSize ?? (await declaredUncompressedSize(imagePath, compression));
  }

  // The target and the rules that protect the wrong disk.
  const described = await describeTarget(opts.target);
  if (described.kind === 'other') throw new MemuError(`the target ${described.path} is ${described.what}`, ExitCode.targetRefused, 'give a whole drive (see `memu devices`) or a file path');
  let kind: TargetKind;
  let targetPath = described.path;
  let device: BlockDevice | undefined;
  if (described.kind === 'file') {
    if (!described.exists && resolve(described.path).startsWith('/dev/')) {
      throw new MemuError(`there is no drive ${described.path}`, ExitCode.targetRefused, 'check the name with `memu devices` (is the card inserted?)');
    }
    kind = 'file';
    targetPath = resolve(described.path);
    const samePath = [imagePath, bmap?.path].filter(Boolean).map((p) => resolve(p!));
    if (described.exists && samePath.includes(await realpath(targetPath))) {
      throw new MemuError(`the target ${opts.target} is the image or its bmap itself`, ExitCode.targetRefused, 'write to another file or a drive');
    }
  } else {
    kind = 'block';
    device = described.device;
    if (imageSize === undefined) {
      log.info({ image: imagePath }, `${compression} does not record the image size: decompressing once to measure it (a .bmap beside the image avoids this)`);
      imageSize = await countDecompressedBytes(imagePath, compression as Exclude<Compression, 'none'>);
    }
    const refusal = refusalFor(described, { imageSize, allowPartition: opts.allowPartition, unmount: opts.unmount });
    if (refusal) throw new MemuError(`refusing to write ${targetPath}: ${refusal.reason}`, ExitCode.targetRefused, refusal.hint);
    if (!opts.yes) {
      const confirmed = opts.confirm ? await opts.confirm(device) : false;
      if (!confirmed) {
        throw new MemuError(
          `refusing to write ${targetPath} without confirmation`,
          ExitCode.targetRefused,
          opts.confirm ? 'answer the question with the drive name to go ahead' : 'pass --yes (after checking with `memu devices` that this is the right drive), or run on a terminal to confirm',
        );
      }
    }
    if (opts.unmount && device.mountpoints.length > 0) {
      log.info({ target: targetPath, mountpoints: device.mountpoints }, 'unmounting the target');
      try {
        await unmountDevice(device);
      } catch (err) {
        throw new MemuError(`refusing to write ${targetPath}: ${(err as Error).message}`, ExitCode.targetRefused, 'close whatever uses the drive (a file manager, a shell inside it) and try again');
      }
    }
  }

  if (opts.confirm && !opts.yes) started = performance.now(); // time spent reading the question is not flashing time
  log.debug({ ms: Math.round(performance.now() - started) }, 'image, bmap and target checked');
  const plan: WritePlan = bmap
    ? {
        ranges: bmap.bmap.ranges.map((r) => ({ start: r.start, length: r.length, blocks: `${r.firstBlock}-${r.lastBlock}`, ...(r.checksum ? { checksum: r.checksum } : {}) })),
        ...(bmap.bmap.checksumType ? { checksumType: bmap.bmap.checksumType } : {}),
        imageSize: bmap.bmap.imageSize,
        bmapPath: bmap.path,
      }
    : { ...(imageSize !== undefined ? { imageSize } : {}) };

  const imageFd = compression === 'none' ? await open(imagePath, constants.O_RDONLY) : undefined;
  const input: ImageInput =
    imageFd !== undefined ? { kind: 'raw', path: imagePath, fd: imageFd.fd, size: imageStat.size } : { kind: 'stream', path: imagePath, compression: compression as Exclude<Compression, 'none'> };

  const hasher = new BackgroundHasher();
  try {
    log.info(
      { image: imagePath, target: targetPath, bmap: bmap?.path, compression, imageSize, mappedBytes: bmap?.bmap.mappedBytes },
      `flashing ${imagePath} to ${targetPath}${bmap ? ` (${formatBytes(bmap.bmap.mappedBytes)} mapped of ${formatBytes(bmap.bmap.imageSize)})` : ''}`,
    );
    // The size a regular file target gets; for a stream without a known size it is fixed after writing.
    // O_DIRECT writes pay off on drives (no page cache to fill and flush); into a file on a
    // filesystem they force block allocation per write and measured 2-3x slower than
    // buffered writes, so files are written buffered (and still read back direct).
    const io = await openTargetForWrite(targetPath, kind, { imageSize: imageSize ?? 0, bufferCount, bufferSize: chunkBytes, useDirect: (opts.direct ?? true) && kind === 'block' });
    log.debug({ ms: Math.round(performance.now() - started), direct: io.direct }, 'target opened');
    let extents;
    let bytesWritten: number;
    let finalImageSize: number;
    const writeStarted = performance.now();
    let wroteAnything = false;
    try {
      const byMap = bmap !== undefined;
      progress.stage('write', byMap ? bmap.bmap.mappedBytes : imageSize);
      const pipeline = new WritePipeline(io, syncEveryBytes, (n) => {
        wroteAnything = true;
        if (byMap) progress.bytes(n);
      });
      try {
        const written = await writeImage(input, plan, pipeline, {
          chunkBytes,
          readAhead,
          hasher,
          digestsNeeded: verify && input.kind === 'stream',
          ...(byMap ? {} : { onImageBytes: (n: number) => progress.bytes(n) }),
        });
        extents = written.extents;
        finalImageSize = written.imageBytes;
        await pipeline.finish();
      } catch (err) {
        await pipeline.settle();
        progress.done('failed');
        throw err;
      }
      bytesWritten = pipeline.bytesWritten;
      if (kind === 'file' && finalImageSize !== imageSize) {
        await new Promise<void>((res, rej) => ftruncate(io.bufferedFd, finalImageSize, (e) => (e ? rej(e) : res())));
      }
      progress.done(`${formatBytes(bytesWritten)} written${io.direct ? ' (direct I/O)' : ''}`);
    } finally {
      await closeTarget(io);
    }
    const writeSeconds = (performance.now() - writeStarted) / 1000;
    log.info({ bytesWritten, seconds: writeSeconds, direct: io.direct }, 'image written and synced');

    let partitionTableReread: boolean | undefined;
    const rereadIfBlock = async (): Promise<void> => {
      // A partition holds no partition table of the drive's; only whole drives are re-read.
      if (kind !== 'block' || !wroteAnything || device?.type === 'part') return;
      const r = await rereadPartitionTable(targetPath);
      partitionTableReread = r.ok;
      if (r.ok) log.info({ target: targetPath, via: r.detail }, 'partition table re-read');
      else log.warn({ target: targetPath, detail: r.detail }, 'the kernel could not re-read the partition table: unplug and re-insert the drive before using its partitions');
    };

    let verifySeconds = 0;
    let verifiedDirect = false;
    try {
      await opts.testHooks?.afterWrite?.(targetPath);
      if (verify) {
        const verifyStarted = performance.now();
        const total = extents.reduce((n, x) => n + x.length, 0);
        const reader = await openTargetForRead(targetPath, kind, { bufferCount: verifyReadAhead + 1, bufferSize: verifyChunkBytes, useDirect: opts.direct ?? true, probePosition: extents[0]?.start ?? 0 });
        verifiedDirect = reader.direct;
        // Direct reads bypass the page cache by themselves. Buffered reads (all of them, or a
        // single one standing in for a refused direct read) must not be served from it: drop
        // what it holds of the target first.
        let dropped: Promise<boolean> | undefined;
        const dropCache = async (): Promise<void> => {
          dropped ??= dropTargetCache(targetPath, kind);
          await dropped;
        };
        if (reader.direct) reader.beforeBufferedFallback = dropCache;
        else await dropCache();
        log.debug({ ms: Math.round(performance.now() - started), direct: reader.direct }, 'target opened for read-back');
        try {
          progress.stage('verify', total);
          const against: VerifyAgainst = input.kind === 'raw' ? { kind: 'image-bytes', imageFd: input.fd } : { kind: 'digests', readImage: compressedRangeReader(input) };
          await verifyExtents(reader, extents, against, { chunkBytes: verifyChunkBytes, readAhead: verifyReadAhead, hasher, onBytes: (n) => progress.bytes(n) }).catch((err: unknown) => {
            progress.done('failed');
            throw err;
          });
          progress.done(`${formatBytes(total)} read back and matched${reader.direct ? ' (direct I/O)' : ''}`);
        } finally {
          await closeTarget(reader);
        }
        verifySeconds = (performance.now() - verifyStarted) / 1000;
        log.info({ verifiedBytes: total, seconds: verifySeconds, extents: extents.length }, 'verified: the target holds the image');
      }
    } finally {
      await rereadIfBlock();
    }

    return {
      ok: true,
      image: imagePath,
      target: targetPath,
      targetKind: kind,
      ...(bmap ? { bmap: bmap.path } : {}),
      compression,
      imageSize: finalImageSize,
      mappedBytes: bmap ? bmap.bmap.mappedBytes : bytesWritten,
      bytesWritten,
      seconds: (performance.now() - started) / 1000,
      writeSeconds,
      verifySeconds,
      verified: verify,
      direct: io.direct,
      verifiedDirect,
      ...(partitionTableReread !== undefined ? { partitionTableReread } : {}),
    };
  } finally {
    await hasher.close();
    await imageFd?.close();
  }
}
