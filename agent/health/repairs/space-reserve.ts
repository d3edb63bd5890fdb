import { rename, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fsyncDirectory, fsyncFile, temporaryNameFor } from '../../../shared/files/durable-files.ts';
import { ignoreNotFound } from '../../../shared/errors.ts';
import { runCommand } from '../../../shared/process/run-command.ts';
import type { SpaceLimit } from '../checks/disk-space.ts';
import { bytes } from '../checks/wording.ts';
import { isEnough } from './free-disk-space.ts';
import { DAY, HOUR, resultNamed, type Repair, type RepairLimits } from './repair.ts';

/**
 * A file of allocated blocks on the data partition that the box gives back when the disk
 * is full, so that memu.db, Postgres's log, the journal and the next boot can still
 * write while the family is told to make room. Docker's prunes come first; this is the
 * last disk repair.
 */

export const RESERVE_FILE = '.reserve';
export const RELEASE_RESERVE_REPAIR = 'release-space-reserve';
export const RESTORE_RESERVE_REPAIR = 'restore-space-reserve';

/**
 * 1 % of the partition, at most 1 GiB: 320 MB on a 32 GB card, 1 GiB from 100 GB up.
 * A commit to memu.db is kilobytes, Postgres writes its log in 16 MB segments, the
 * journal keeps under 200 MB: hundreds of megabytes give the box days of running
 * and booting after the family's files filled the rest, while 1 % is little to lose.
 *
 * Released when free space is nearly zero: under 0.25 % of the partition or 128 MiB,
 * whichever is less (80 MB on a 32 GB card), the point where writes start to fail
 * within hours. Restored only when the check says ok and at least the disk repair's
 * target stays free after it (so restoring does not make the disk low again), at most
 * twice a day, 6 hours apart: a disk that keeps filling is not flapped.
 */
export const DEFAULT_RESERVE: ReserveNumbers = {
  fraction: 0.01,
  maxBytes: 2 ** 30,
  nearlyFullFraction: 0.0025,
  nearlyFullMaxBytes: 128 * 2 ** 20,
};

export interface ReserveNumbers {
  fraction: number;
  maxBytes: number;
  nearlyFullFraction: number;
  nearlyFullMaxBytes: number;
}

export const RELEASE_RESERVE_LIMITS: RepairLimits = { minGapMs: 0, windows: [{ max: 6, windowMs: DAY }] };
export const RESTORE_RESERVE_LIMITS: RepairLimits = { minGapMs: 6 * HOUR, windows: [{ max: 2, windowMs: DAY }] };

export interface SpaceReserveState {
  path: string;
  /** Bytes the reserve holds now (0 when absent). */
  heldBytes: number;
  /** Bytes it should hold on this partition. */
  wantedBytes: number;
  sizeBytes: number;
  freeBytes: number;
  /** Free space is nearly zero: release it. */
  nearlyFull: boolean;
}

export interface SpaceReserveOptions {
  dataDir: string;
  numbers?: ReserveNumbers;
  /** What must still be free after restoring: the disk repair's target for this partition. */
  keepFree: SpaceLimit;
  /** The check whose results it answers; default `data-disk-space`. */
  check?: string;
}

export interface SpaceReserve {
  readonly path: string;
  state(): Promise<SpaceReserveState>;
  /** Allocates the reserve (temporary name, fallocate, fsync, rename): it is whole or absent. */
  create(): Promise<number>;
  release(): Promise<number>;
  repairs: { release: Repair; restore: Repair };
}

export function createSpaceReserve(opts: SpaceReserveOptions): SpaceReserve {
  const n = opts.numbers ?? DEFAULT_RESERVE;
  const path = join(opts.dataDir, RESERVE_FILE);
  const check = opts.check ?? 'data-disk-space';

  const state = async (): Promise<SpaceReserveState> => {
    const [fs, file] = await Promise.all([statfs(opts.dataDir), stat(path).catch(ignoreNotFound)]);
    const sizeBytes = fs.blocks * fs.bsize;
    const freeBytes = fs.bavail * fs.bsize;
    const wantedBytes = Math.min(Math.floor((sizeBytes * n.fraction) / fs.bsize) * fs.bsize, n.maxBytes);
    return {
      path,
      heldBytes: file ? file.blocks * 512 : 0,
      wantedBytes,
      sizeBytes,
      freeBytes,
      nearlyFull: freeBytes < Math.min(sizeBytes * n.nearlyFullFraction, n.nearlyFullMaxBytes),
    };
  };

  const create = async (): Promise<number> => {
    const { wantedBytes } = await state();
    const tmp = temporaryNameFor(path);
    try {
      // fallocate(1) allocates real blocks without writing them (Node's fs has no fallocate).
      await runCommand('fallocate', ['-l', String(wantedBytes), tmp]);
      await fsyncFile(tmp);
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fsyncDirectory(dirname(path));
    return wantedBytes;
  };

  const release = async (): Promise<number> => {
    const { heldBytes } = await state();
    await unlink(path).catch(ignoreNotFound);
    await fsyncDirectory(dirname(path));
    return heldBytes;
  };

  const releaseRepair: Repair = {
    name: RELEASE_RESERVE_REPAIR,
    answers: (results) => {
      const r = resultNamed(results, check);
      return r !== undefined && r.status !== 'ok';
    },
    async needed() {
      const s = await state();
      return s.heldBytes > 0 && s.nearlyFull;
    },
    limits: RELEASE_RESERVE_LIMITS,
    timeoutMs: 60_000,
    async run() {
      const freed = await release();
      const s = await state();
      return {
        ok: true,
        message: `The data disk was nearly full, so the box gave back its ${bytes(freed)} reserve: ${bytes(s.freeBytes)} free now, for the box's own records while the family makes room.`,
        freedBytes: freed,
      };
    },
  };

  const restoreRepair: Repair = {
    name: RESTORE_RESERVE_REPAIR,
    answers: (results) => resultNamed(results, check)?.status === 'ok',
    async needed() {
      const s = await state();
      return s.heldBytes < s.wantedBytes && isEnough(s.freeBytes - (s.wantedBytes - s.heldBytes), s.sizeBytes, opts.keepFree);
    },
    limits: RESTORE_RESERVE_LIMITS,
    timeoutMs: 120_000,
    async run() {
      const held = await create();
      return { ok: true, message: `The box set ${bytes(held)} of the data disk aside (${path}) to give back if the disk fills up.` };
    },
  };

  return { path, state, create, release, repairs: { release: releaseRepair, restore: restoreRepair } };
}
