import { constants, ftruncate } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../host/log.ts';
import type { Progress } from '../host/progress.ts';
import { formatBytes } from '../host/progress.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { unmountDevice, type BlockDevice } from './block-devices.ts';
import type { Compression } from './compression.ts';
import { compressedRangeReader, emptyImage, inspectImage, type ImageSource } from './image-source.ts';
import { admitTarget, type AdmittedTarget } from './target-admission.ts';
import { heldBackRanges, HeldBackWrites, rangesToClear } from './partition-table-guard.ts';
import { clearRanges, closeTarget, dropTargetCache, openTargetForRead, openTargetForWrite, rereadPartitionTable, WritePipeline, type TargetIo, type TargetKind } from './target.ts';
import { writeImage, type ImageInput, type WritePlan, type WrittenExtent } from './write-engine.ts';
import { BackgroundHasher } from './background-hasher.ts';
import { verifyExtents, type VerifyAgainst } from './verify.ts';

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
  /** Mount points whose drives are refused as the running system (default: /, /boot, /boot/efi, /boot/firmware, /usr). */
  systemMountpoints?: readonly string[];
  /** Stops the flash (Ctrl-C): it throws MemuError with ExitCode.interrupted, saying what state the target is in. */
  signal?: AbortSignal;
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

/** One flash: its options, and what the steps have learned and opened so far. */
interface Flash {
  opts: FlashOptions;
  log: Logger;
  progress: Progress;
  /** Flashing time starts after the confirmation question has been answered. */
  started: number;
  /** How far it got, for the message when it is interrupted. */
  phase: 'checking' | 'writing' | 'verifying' | 'done';
  /** The path the target resolved to, once known. */
  targetPath: string;
  hasher?: BackgroundHasher;
  imageFd?: FileHandle;
  /** Whether the kernel re-read the partition table after writing (whole drives only). */
  partitionTableReread?: boolean;
}

/** What the write step did. */
interface Written {
  input: ImageInput;
  extents: WrittenExtent[];
  imageBytes: number;
  bytesWritten: number;
  direct: boolean;
  seconds: number;
}

interface Verified {
  seconds: number;
  direct: boolean;
}

/**
 * Writes a built image to a drive or a file: only its data (by the bmap, or by
 * skipping zero blocks), decompressing on the fly, and — unless `verify` is
 * false — reads it back past the page cache to prove it. Refuses targets that
 * must not be written. Throws MemuError with the exit code for each failure.
 *
 *   inspect -> admit -> confirm -> unmount -> write -> verify -> re-read -> report
 */
export async function flashImage(opts: FlashOptions): Promise<FlashResult> {
  const flash: Flash = { opts, log: opts.log, progress: opts.progress ?? noProgress, started: performance.now(), phase: 'checking', targetPath: opts.target };
  try {
    const image = await inspectImage(opts.image, { ...(opts.bmap !== undefined ? { bmap: opts.bmap } : {}), log: opts.log });
    const target = await admit(flash, image);
    await confirm(flash, target);
    await unmount(flash, target);
    let written: Written | undefined;
    let verified: Verified | undefined;
    try {
      written = await write(flash, image, target);
      verified = await verify(flash, target, written);
    } finally {
      await reread(flash, target, written !== undefined);
    }
    flash.phase = 'done';
    return report(flash, image, target, written, verified);
  } catch (err) {
    if (opts.signal?.aborted && flash.phase !== 'done') throw interrupted(flash);
    throw err;
  } finally {
    await flash.hasher?.close();
    await flash.imageFd?.close();
  }
}

function interrupted(flash: Flash): MemuError {
  const target = flash.targetPath;
  switch (flash.phase) {
    case 'checking':
      return new MemuError(`interrupted: nothing was written to ${target}`, ExitCode.interrupted, 'run the command again to flash it');
    case 'writing':
      return new MemuError(
        `interrupted: ${target} is incomplete and will not boot; flash it again`,
        ExitCode.interrupted,
        'its partition table was cleared before writing, so it cannot pass for a good drive: run the same memu flash command again',
      );
    default:
      return new MemuError(`interrupted: ${target} was written but not verified; flash it again to be sure it holds the image`, ExitCode.interrupted, 'run the same memu flash command again');
  }
}

/** Admit: the target and the rules that protect the wrong disk (block-devices.ts, target-admission.ts). */
async function admit(flash: Flash, image: ImageSource): Promise<AdmittedTarget> {
  const { opts } = flash;
  const target = await admitTarget(opts.target, image, {
    allowPartition: opts.allowPartition,
    unmount: opts.unmount,
    log: flash.log,
    ...(opts.systemMountpoints ? { systemMountpoints: opts.systemMountpoints } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  flash.targetPath = target.path;
  return target;
}

/** Confirm: a drive is written only with --yes or the person's answer (a file target needs neither). */
async function confirm(flash: Flash, target: AdmittedTarget): Promise<void> {
  const { opts } = flash;
  if (target.kind !== 'block' || opts.yes) return;
  const confirmed = opts.confirm ? await opts.confirm(target.device) : false;
  opts.signal?.throwIfAborted();
  if (!confirmed) {
    throw new MemuError(
      `refusing to write ${target.path} without confirmation`,
      ExitCode.targetRefused,
      opts.confirm ? 'answer the question with the drive name to go ahead' : 'pass --yes (after checking with `memu devices` that this is the right drive), or run on a terminal to confirm',
    );
  }
  flash.started = performance.now(); // time spent reading the question is not flashing time
}

/** Unmount: with --unmount, the target's mounted filesystems and swap are released first. */
async function unmount(flash: Flash, target: AdmittedTarget): Promise<void> {
  flash.opts.signal?.throwIfAborted();
  if (target.kind !== 'block' || !flash.opts.unmount || target.device.mountpoints.length === 0) return;
  flash.log.info({ target: target.path, mountpoints: target.device.mountpoints }, 'unmounting the target');
  try {
    await unmountDevice(target.device);
  } catch (err) {
    throw new MemuError(`refusing to write ${target.path}: ${(err as Error).message}`, ExitCode.targetRefused, 'close whatever uses the drive (a file manager, a shell inside it) and try again');
  }
}

function writePlan(image: ImageSource): WritePlan {
  const { bmap } = image;
  if (!bmap) return image.imageSize !== undefined ? { imageSize: image.imageSize } : {};
  return {
    ranges: bmap.bmap.ranges.map((r) => ({ start: r.start, length: r.length, blocks: `${r.firstBlock}-${r.lastBlock}`, ...(r.checksum ? { checksum: r.checksum } : {}) })),
    ...(bmap.bmap.checksumType ? { checksumType: bmap.bmap.checksumType } : {}),
    imageSize: bmap.bmap.imageSize,
    bmapPath: bmap.path,
  };
}

async function imageInput(flash: Flash, image: ImageSource): Promise<ImageInput> {
  if (image.compression === 'none') {
    flash.imageFd = await open(image.path, constants.O_RDONLY);
    return { kind: 'raw', path: image.path, fd: flash.imageFd.fd, size: image.fileBytes };
  }
  return { kind: 'stream', path: image.path, compression: image.compression };
}

/**
 * Write: the target's partition tables are cleared and synced first, then the image's
 * data goes on, and the image's own partition-table regions last (partition-table-guard.ts).
 * A file target is created empty (so nothing needs clearing) and sized to the image.
 */
async function write(flash: Flash, image: ImageSource, target: AdmittedTarget): Promise<Written> {
  const input = await imageInput(flash, image);
  flash.hasher = new BackgroundHasher();
  flash.log.info(
    { image: image.path, target: target.path, bmap: image.bmap?.path, compression: image.compression, imageSize: image.imageSize, mappedBytes: image.bmap?.bmap.mappedBytes },
    `flashing ${image.path} to ${target.path}${image.bmap ? ` (${formatBytes(image.bmap.bmap.mappedBytes)} mapped of ${formatBytes(image.bmap.bmap.imageSize)})` : ''}`,
  );
  const io = await openForWriting(flash, image, target);
  try {
    const started = performance.now();
    if (target.kind === 'block') await clearRanges(io, rangesToClear(target.device.sizeBytes, image.imageSize));
    const { extents, imageBytes, bytesWritten } = await writeData(flash, image, input, io);
    if (target.kind === 'file' && imageBytes !== image.imageSize) await truncateTo(io, imageBytes);
    const seconds = (performance.now() - started) / 1000;
    flash.log.info({ bytesWritten, seconds, direct: io.direct }, 'image written and synced');
    return { input, extents, imageBytes, bytesWritten, direct: io.direct, seconds };
  } finally {
    await closeTarget(io);
  }
}

async function openForWriting(flash: Flash, image: ImageSource, target: AdmittedTarget): Promise<TargetIo> {
  flash.opts.signal?.throwIfAborted();
  // O_DIRECT writes pay off on drives (no page cache to fill and flush); into a file on a
  // filesystem they force block allocation per write and measured 2-3x slower than
  // buffered writes, so files are written buffered (and still read back direct).
  const useDirect = (flash.opts.direct ?? true) && target.kind === 'block';
  const io = await openTargetForWrite(target.path, target.kind, { imageSize: image.imageSize ?? 0, bufferCount, bufferSize: chunkBytes, useDirect });
  flash.phase = 'writing';
  flash.log.debug({ ms: Math.round(performance.now() - flash.started), direct: io.direct }, 'target opened');
  return io;
}

/** The image's data through the write pipeline, its partition-table regions held back to the end. */
async function writeData(flash: Flash, image: ImageSource, input: ImageInput, io: TargetIo): Promise<{ extents: WrittenExtent[]; imageBytes: number; bytesWritten: number }> {
  const { opts, progress } = flash;
  const byMap = image.bmap !== undefined;
  progress.stage('write', byMap ? image.bmap!.bmap.mappedBytes : image.imageSize);
  const onWritten = (n: number): void => {
    if (byMap) progress.bytes(n);
  };
  const pipeline = new WritePipeline(io, syncEveryBytes, onWritten, new HeldBackWrites(heldBackRanges(image.imageSize)));
  try {
    const { extents, imageBytes } = await writeImage(input, writePlan(image), pipeline, {
      chunkBytes,
      readAhead,
      hasher: flash.hasher!,
      digestsNeeded: (opts.verify ?? true) && input.kind === 'stream',
      ...(byMap ? {} : { onImageBytes: (n: number) => progress.bytes(n) }),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (imageBytes === 0) throw emptyImage(opts.image);
    await pipeline.finish();
    progress.done(`${formatBytes(pipeline.bytesWritten)} written${io.direct ? ' (direct I/O)' : ''}`);
    return { extents, imageBytes, bytesWritten: pipeline.bytesWritten };
  } catch (err) {
    await pipeline.settle();
    progress.done(opts.signal?.aborted ? 'interrupted' : 'failed');
    throw err;
  }
}

/** The size a file target gets once a stream of unknown length has ended. */
function truncateTo(io: TargetIo, size: number): Promise<void> {
  return new Promise<void>((res, rej) => ftruncate(io.bufferedFd, size, (e) => (e ? rej(e) : res())));
}

/**
 * Verify: every written byte is read back past the page cache (O_DIRECT, or buffered
 * after dropping the cache) and checked against the image or its digests.
 */
async function verify(flash: Flash, target: AdmittedTarget, written: Written): Promise<Verified | undefined> {
  const { opts, log, progress } = flash;
  await opts.testHooks?.afterWrite?.(target.path);
  if (!(opts.verify ?? true)) return undefined;
  opts.signal?.throwIfAborted();
  flash.phase = 'verifying';
  const started = performance.now();
  const { extents, input } = written;
  const total = extents.reduce((n, x) => n + x.length, 0);
  const reader = await openTargetForRead(target.path, target.kind, { bufferCount: verifyReadAhead + 1, bufferSize: verifyChunkBytes, useDirect: opts.direct ?? true, probePosition: extents[0]?.start ?? 0 });
  try {
    // Direct reads bypass the page cache by themselves. Buffered reads (all of them, or a
    // single one standing in for a refused direct read) must not be served from it: drop
    // what it holds of the target first.
    let dropped: Promise<boolean> | undefined;
    const dropCache = async (): Promise<void> => {
      dropped ??= dropTargetCache(target.path, target.kind);
      await dropped;
    };
    if (reader.direct) reader.beforeBufferedFallback = dropCache;
    else await dropCache();
    log.debug({ ms: Math.round(performance.now() - flash.started), direct: reader.direct }, 'target opened for read-back');
    progress.stage('verify', total);
    const against: VerifyAgainst = input.kind === 'raw' ? { kind: 'image-bytes', imageFd: input.fd } : { kind: 'digests', readImage: compressedRangeReader(input.path, input.compression) };
    await verifyExtents(reader, extents, against, {
      chunkBytes: verifyChunkBytes,
      readAhead: verifyReadAhead,
      hasher: flash.hasher!,
      onBytes: (n) => progress.bytes(n),
      ...(opts.signal ? { signal: opts.signal } : {}),
    }).catch((err: unknown) => {
      progress.done(opts.signal?.aborted ? 'interrupted' : 'failed');
      throw err;
    });
    progress.done(`${formatBytes(total)} read back and matched${reader.direct ? ' (direct I/O)' : ''}`);
  } finally {
    await closeTarget(reader);
  }
  const seconds = (performance.now() - started) / 1000;
  log.info({ verifiedBytes: total, seconds, extents: extents.length }, 'verified: the target holds the image');
  return { seconds, direct: reader.direct };
}

/**
 * Re-read: the kernel is told about the new partition table, or, after a failed or
 * interrupted write, that the old one is gone (then finding none is expected). A
 * partition holds no table of the drive's.
 */
async function reread(flash: Flash, target: AdmittedTarget, writeCompleted: boolean): Promise<void> {
  if (target.kind !== 'block' || flash.phase === 'checking' || target.device.type === 'part') return;
  const r = await rereadPartitionTable(target.path);
  flash.partitionTableReread = r.ok;
  if (r.ok) flash.log.info({ target: target.path, via: r.detail }, 'partition table re-read');
  else if (!writeCompleted) flash.log.debug({ target: target.path, detail: r.detail }, 'no partition table to re-read on the incomplete target');
  else flash.log.warn({ target: target.path, detail: r.detail }, 'the kernel could not re-read the partition table: unplug and re-insert the drive before using its partitions');
}

function report(flash: Flash, image: ImageSource, target: AdmittedTarget, written: Written, verified: Verified | undefined): FlashResult {
  return {
    ok: true,
    image: image.path,
    target: target.path,
    targetKind: target.kind,
    ...(image.bmap ? { bmap: image.bmap.path } : {}),
    compression: image.compression,
    imageSize: written.imageBytes,
    mappedBytes: image.bmap ? image.bmap.bmap.mappedBytes : written.bytesWritten,
    bytesWritten: written.bytesWritten,
    seconds: (performance.now() - flash.started) / 1000,
    writeSeconds: written.seconds,
    verifySeconds: verified?.seconds ?? 0,
    verified: verified !== undefined,
    direct: written.direct,
    verifiedDirect: verified?.direct ?? false,
    ...(flash.partitionTableReread !== undefined ? { partitionTableReread: flash.partitionTableReread } : {}),
  };
}
