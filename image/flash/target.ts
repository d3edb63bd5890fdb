import { constants, fdatasync, ftruncate, read, write, close, open as openCb } from 'node:fs';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { promisify } from 'node:util';
import { ExitCode, MemuError } from '../host/errors.ts';
import { formatBytes } from '../host/progress.ts';
import { allocateIoBuffers, BufferPool, directAlignment, type IoBuffer } from './aligned-buffers.ts';
import type { ByteRange, HeldBackWrites, WritePiece } from './partition-table-guard.ts';

const openAsync = promisify(openCb) as (path: string, flags: number, mode?: number) => Promise<number>;
const closeAsync = promisify(close);
function pwriteAsync(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}
function preadAsync(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
  return new Promise((resolve, reject) => read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))));
}
const fdatasyncAsync = promisify(fdatasync);
const ftruncateAsync = promisify(ftruncate);

export type TargetKind = 'block' | 'file';

/** Writes and reads at absolute offsets, with O_DIRECT where the target allows it. */
export interface TargetIo {
  readonly path: string;
  readonly kind: TargetKind;
  /** Whether aligned transfers bypass the page cache. */
  readonly direct: boolean;
  /** Buffered fd: unaligned tails, fallback, syncs. For block devices it holds the O_EXCL claim. */
  readonly bufferedFd: number;
  readonly directFd?: number;
  readonly buffers: IoBuffer[];
  /** Runs once before the first buffered read that stands in for a refused direct one (read-back drops the cache there). */
  beforeBufferedFallback?: () => Promise<void>;
}

/** Opens `path` once the caller has decided it may be written. A regular file is created or emptied. */
export async function openTargetForWrite(
  path: string,
  kind: TargetKind,
  opts: { imageSize: number; bufferCount: number; bufferSize: number; useDirect: boolean },
): Promise<TargetIo> {
  let bufferedFd: number;
  try {
    // O_EXCL on a block device fails with EBUSY while anything (a mount, LVM, RAID) holds it:
    // the kernel's own last check that nothing is using the disk.
    bufferedFd =
      kind === 'block'
        ? await openAsync(path, constants.O_RDWR | constants.O_EXCL)
        : await openAsync(path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o644);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EBUSY') {
      throw new MemuError(`${path} is in use (mounted, swap, LVM or RAID member)`, ExitCode.targetRefused, 'unmount it (or pass --unmount) and stop whatever uses it, then try again');
    }
    throw new MemuError(`cannot open ${path} for writing: ${e.message}`, e.code === 'EACCES' || e.code === 'EPERM' ? ExitCode.environment : ExitCode.writeError, e.code === 'EACCES' || e.code === 'EPERM' ? 'run as root (sudo memu flash ...)' : undefined);
  }
  if (kind === 'file') await ftruncateAsync(bufferedFd, opts.imageSize);

  let directFd: number | undefined;
  if (opts.useDirect && opts.imageSize >= directAlignment) {
    directFd = await openAsync(path, constants.O_RDWR | constants.O_DIRECT).catch(() => undefined);
  }
  let buffers = await allocateIoBuffers(opts.bufferCount, opts.bufferSize, directFd === undefined ? undefined : { fd: directFd, probe: kind === 'block' ? 'read' : 'write-zeros' });
  const direct = directFd !== undefined && buffers.every((b) => b.direct);
  if (!direct && directFd !== undefined) {
    await closeAsync(directFd).catch(() => {});
    directFd = undefined;
    buffers = buffers.map((b) => ({ view: b.view, direct: false }));
  }
  return { path, kind, direct, bufferedFd, ...(directFd === undefined ? {} : { directFd }), buffers };
}

/** Opens `path` read-only for verification, direct when possible. */
export async function openTargetForRead(
  path: string,
  kind: TargetKind,
  opts: { bufferCount: number; bufferSize: number; useDirect: boolean; probePosition: number },
): Promise<TargetIo> {
  const bufferedFd = await openAsync(path, constants.O_RDONLY);
  let directFd: number | undefined;
  if (opts.useDirect) directFd = await openAsync(path, constants.O_RDONLY | constants.O_DIRECT).catch(() => undefined);
  // Probed where data was written: a filesystem may answer reads of holes without checking
  // alignment. Should a window still be wrong, reads fail with EINVAL and fall back to
  // buffered reads of a cache the caller has dropped.
  const probe = { probe: 'read' as const, position: Math.floor(opts.probePosition / directAlignment) * directAlignment };
  const buffers = await allocateIoBuffers(opts.bufferCount, opts.bufferSize, directFd === undefined ? undefined : { fd: directFd, ...probe });
  const direct = directFd !== undefined && buffers.every((b) => b.direct);
  if (!direct && directFd !== undefined) {
    await closeAsync(directFd).catch(() => {});
    directFd = undefined;
  }
  return { path, kind, direct, bufferedFd, ...(directFd === undefined ? {} : { directFd }), buffers: buffers.map((b) => ({ view: b.view, direct })) };
}

export async function closeTarget(t: TargetIo): Promise<void> {
  if (t.directFd !== undefined) await closeAsync(t.directFd).catch(() => {});
  await closeAsync(t.bufferedFd).catch(() => {});
}

function isAligned(n: number): boolean {
  return n % directAlignment === 0;
}

/** Writes all of `buf[0..length)` at `position`; O_DIRECT when everything is aligned. */
export async function writeFully(t: TargetIo, buf: Buffer, length: number, position: number, bufferIsAligned: boolean): Promise<void> {
  let done = 0;
  while (done < length) {
    const useDirect = t.directFd !== undefined && bufferIsAligned && isAligned(done) && isAligned(length - done) && isAligned(position + done);
    let n: number;
    try {
      n = await pwriteAsync(useDirect ? t.directFd! : t.bufferedFd, buf, done, length - done, position + done);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (useDirect && e.code === 'EINVAL') {
        // The target refused this direct write after all: finish it buffered.
        n = await pwriteAsync(t.bufferedFd, buf, done, length - done, position + done).catch((e2: NodeJS.ErrnoException) => {
          throw writeFailure(t, position + done, e2);
        });
      } else throw writeFailure(t, position + done, e);
    }
    if (n === 0) throw writeFailure(t, position + done, Object.assign(new Error('no space left (the write stopped short)'), { code: 'ENOSPC' }));
    done += n;
  }
}

function writeFailure(t: TargetIo, offset: number, e: NodeJS.ErrnoException): MemuError {
  const hint =
    e.code === 'ENOSPC'
      ? t.kind === 'file'
        ? 'free space on the filesystem holding the target file, or write to a larger drive'
        : 'the drive is smaller than it claims or failed: try another drive'
      : 'the drive may be failing or was removed: re-insert it or try another drive';
  return new MemuError(`writing ${t.path} failed at byte ${offset} (${formatBytes(offset)}): ${e.message}`, ExitCode.writeError, hint);
}

/** Reads `length` bytes at `position` into `buf`; short reads are an error (the target ended early). */
export async function readFully(t: TargetIo, buf: Buffer, length: number, position: number, bufferIsAligned: boolean): Promise<void> {
  let done = 0;
  while (done < length) {
    const useDirect = t.directFd !== undefined && bufferIsAligned && isAligned(done) && isAligned(position + done);
    // A direct read must have an aligned length too: round up inside the buffer.
    const want = useDirect ? Math.min(buf.length - done, Math.ceil((length - done) / directAlignment) * directAlignment) : length - done;
    let bytesRead: number;
    try {
      ({ bytesRead } = await preadAsync(useDirect && isAligned(want) ? t.directFd! : t.bufferedFd, buf, done, want, position + done));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (useDirect && e.code === 'EINVAL') {
        await t.beforeBufferedFallback?.();
        ({ bytesRead } = await preadAsync(t.bufferedFd, buf, done, length - done, position + done).catch((e2: NodeJS.ErrnoException) => {
          throw new MemuError(`reading back ${t.path} failed at byte ${position + done}: ${e2.message}`, ExitCode.verifyFailed, 'the drive may be failing or was removed: try another drive');
        }));
      } else {
        throw new MemuError(`reading back ${t.path} failed at byte ${position + done}: ${e.message}`, ExitCode.verifyFailed, 'the drive may be failing or was removed: try another drive');
      }
    }
    if (bytesRead === 0) throw new MemuError(`${t.path} ends at byte ${position + done}, before the image does`, ExitCode.verifyFailed, 'the target is smaller than the image');
    done += bytesRead;
  }
}

/** Zeroes `ranges` of the target and syncs, so the zeros are on the medium before anything written after them. */
export async function clearRanges(t: TargetIo, ranges: ByteRange[]): Promise<void> {
  const zeros = Buffer.alloc(Math.max(0, ...ranges.map((r) => r.length)));
  for (const r of ranges) await writeFully(t, zeros, r.length, r.start, false);
  await syncTarget(t);
}

export async function syncTarget(t: TargetIo): Promise<void> {
  try {
    await fdatasyncAsync(t.bufferedFd);
  } catch (err) {
    throw writeFailure(t, 0, err as NodeJS.ErrnoException);
  }
}

/**
 * Runs writes concurrently from a fixed pool of buffers and syncs every
 * `syncEveryBytes` in the background, so dirty data never piles up into one
 * long stall at the end. The first failure stops everything. Writes into the
 * `heldBack` ranges are kept aside and written by `finish`, after a sync of the rest.
 */
export class WritePipeline {
  readonly pool: BufferPool;
  private inFlight = new Set<Promise<void>>();
  private failure: unknown;
  private sinceSync = 0;
  private syncing: Promise<void> | undefined;
  bytesWritten = 0;

  constructor(
    private readonly target: TargetIo,
    private readonly syncEveryBytes: number,
    private readonly onWritten: (bytesWritten: number) => void,
    private readonly heldBack?: HeldBackWrites,
  ) {
    this.pool = new BufferPool(target.buffers);
  }

  async acquire(): Promise<IoBuffer> {
    this.throwIfFailed();
    const b = await this.pool.acquire();
    this.throwIfFailed();
    return b;
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /** Stops the pipeline: the next `acquire` (and `finish`) throws `err`. */
  fail(err: unknown): void {
    this.failure ??= err;
  }

  /**
   * Writes `pieces` (offsets into `buf`) and then returns `buf` to the pool, once
   * `alsoUsedBy` (the buffer's hashing) is done with it too.
   */
  submit(buf: IoBuffer, pieces: WritePiece[], alsoUsedBy?: Promise<unknown>): void {
    const now = this.heldBack ? this.heldBack.divert(buf.view, pieces) : pieces;
    const job = (async () => {
      await this.writePieces(buf, now).catch((err: unknown) => this.fail(err));
      try {
        await alsoUsedBy;
      } catch (err) {
        this.fail(err);
      } finally {
        this.pool.release(buf);
      }
    })();
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
  }

  private async writePieces(buf: IoBuffer, pieces: WritePiece[]): Promise<void> {
    for (const p of pieces) {
      await writeFully(this.target, buf.view.subarray(p.bufferOffset), p.length, p.position, buf.direct && isAligned(p.bufferOffset));
      this.bytesWritten += p.length;
      this.sinceSync += p.length;
      this.onWritten(this.bytesWritten);
    }
    if (this.sinceSync >= this.syncEveryBytes && !this.syncing) {
      this.sinceSync = 0;
      this.syncing = syncTarget(this.target)
        .catch((err: unknown) => this.fail(err))
        .finally(() => {
          this.syncing = undefined;
        });
    }
  }

  /** Waits for every write and a sync, then writes what was held back and syncs again; throws the first failure. */
  async finish(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
    await syncTarget(this.target);
    const held = this.heldBack?.takeHeld() ?? [];
    if (held.length === 0) return;
    for (const h of held) {
      await writeFully(this.target, h.data, h.data.length, h.position, false);
      this.bytesWritten += h.data.length;
      this.onWritten(this.bytesWritten);
    }
    await syncTarget(this.target);
  }

  /** Waits for in-flight work without throwing (used when bailing out). */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    if (this.syncing) await this.syncing;
  }
}

/**
 * Drops cached pages of the target, so buffered reads come from the medium:
 * `blockdev --flushbufs` for a device, and `dd iflag=nocache count=0`
 * (posix_fadvise DONTNEED over the whole file) for both.
 */
export async function dropTargetCache(path: string, kind: TargetKind): Promise<boolean> {
  let ok = true;
  if (kind === 'block') ok = (await runCommandOutcome('blockdev', ['--flushbufs', path])).code === 0 && ok;
  ok = (await runCommandOutcome('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none'])).code === 0 && ok;
  return ok;
}

/**
 * Makes the kernel see the new partition table, so following steps (preseed)
 * find the partitions: `blockdev --rereadpt` (the kernel parses the table),
 * then `partx -u` (util-linux parses it and tells the kernel), which also
 * works where the kernel lacks a GPT parser or a partition is busy.
 */
export async function rereadPartitionTable(path: string): Promise<{ ok: boolean; detail: string }> {
  const viaBlockdev = await runCommandOutcome('blockdev', ['--rereadpt', path]);
  const viaPartx = await runCommandOutcome('partx', ['-u', path]);
  const done = [viaBlockdev.code === 0 ? 'blockdev --rereadpt' : '', viaPartx.code === 0 ? 'partx -u' : ''].filter(Boolean);
  if (done.length > 0) return { ok: true, detail: done.join(', ') };
  return { ok: false, detail: `blockdev: ${viaBlockdev.stderr.trim()}; partx: ${viaPartx.stderr.trim()}` };
}
