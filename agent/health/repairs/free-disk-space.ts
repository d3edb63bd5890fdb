import { stat, statfs } from 'node:fs/promises';
import type Docker from 'dockerode';
import { runCommandOutcome } from '../../../shared/process/run-command.ts';
import type { CheckResult } from '../checks/check.ts';
import type { SpaceLimit } from '../checks/disk-space.ts';
import { DOCKER_RESPONSIVE_CHECK } from '../checks/docker-responsive.ts';
import { bytes } from '../checks/wording.ts';
import { DAY, HOUR, resultNamed, type Repair, type RepairLimits, type RepairOutcome } from './repair.ts';

export const FREE_DISK_SPACE_REPAIR = 'free-disk-space';

/**
 * A disk-space check result this repair answers, the path of its filesystem, and when
 * that filesystem has enough: free space at `share` of it or `bytes`, whichever is less,
 * and free inodes at `inodesShare` of all (Docker's layers are many small files, so a
 * disk can run out of inodes first). The device's targets are the disk-space check's own
 * `degraded` limits (DEFAULT_DISK_SPACE_THRESHOLDS), so pruning stops where the check
 * stops worrying.
 */
export interface WatchedFilesystem {
  check: string;
  path: string;
  enough: SpaceLimit;
  enoughInodesShare?: number;
}

/** Whether `freeBytes` of a `sizeBytes` filesystem is enough (the disk-space check's "not low"). */
export function isEnough(freeBytes: number, sizeBytes: number, limit: SpaceLimit): boolean {
  return freeBytes >= Math.min(sizeBytes * limit.share, limit.bytes);
}

/**
 * Pruning is cheap and harmless when there is nothing to prune, but a disk filled by the
 * family's photos stays low for days: twice an hour at most, 12 a day, 10 minutes apart.
 */
export const FREE_DISK_SPACE_LIMITS: RepairLimits = {
  minGapMs: 10 * 60_000,
  windows: [
    { max: 2, windowMs: HOUR },
    { max: 12, windowMs: DAY },
  ],
};

/**
 * The journal is capped at 200 MB by journald.conf.d; in a disk emergency it keeps 50 MB
 * (days of a quiet box's logs, enough to see what led here).
 */
export const JOURNAL_KEEP = '50M';

export type StageName = 'dangling-images' | 'old-containers' | 'build-cache' | 'old-logs';

export interface StageReport {
  stage: StageName;
  /** Free space gained on the low filesystems, measured (statfs) before and after. */
  freedBytes: number;
  /** What was done or why the stage was passed over. */
  message: string;
  ran: boolean;
}

export interface FreeDiskSpaceOptions {
  docker: Docker;
  /** On the device (deviceRepairs): `data-disk-space` at the data partition and `root-disk-space` at `/`. */
  filesystems: readonly WatchedFilesystem[];
  /**
   * The label (`key=value`) every container of the current stack carries, the stack
   * module's `org.memu.stack=<project>`: those are the reconciler's, never pruned.
   * Undefined while the stack is not known, and then no container is pruned.
   */
  currentStackLabel: () => string | undefined;
  /** Runs Docker's prunes with the stack held still (StackModule.runExclusive), so the reconciler does not see them half-done. */
  holdStack?: <T>(reason: string, fn: () => Promise<T>) => Promise<T>;
  /** The systemd journal's directory, whose filesystem the log stage frees. */
  journalDir?: string;
  /** Shrinks the journal; default `journalctl --vacuum-size=50M`. Returns what it said. */
  vacuumJournal?: () => Promise<string>;
}

interface Space {
  path: string;
  device: number;
  sizeBytes: number;
  freeBytes: number;
  enough: boolean;
}

async function space({ path, enough, enoughInodesShare = 0 }: WatchedFilesystem): Promise<Space> {
  const [s, st] = await Promise.all([statfs(path), stat(path)]);
  const sizeBytes = s.blocks * s.bsize;
  const freeBytes = s.bavail * s.bsize;
  const inodesEnough = s.files === 0 || s.ffree / s.files >= enoughInodesShare;
  return { path, device: st.dev, sizeBytes, freeBytes, enough: isEnough(freeBytes, sizeBytes, enough) && inodesEnough };
}

export const journalctlVacuum = async (): Promise<string> => {
  const r = await runCommandOutcome('journalctl', [`--vacuum-size=${JOURNAL_KEEP}`]);
  if (r.code !== 0) throw new Error(r.startError ?? `journalctl --vacuum-size failed: ${r.stderr.trim().split('\n').at(-1) ?? ''}`);
  // journalctl says what it freed on stderr ("Vacuuming done, freed 12.0M of archived journals …").
  return r.stderr.trim().split('\n').at(-1) ?? '';
};

/** The filesystems among `watched` whose checks say low, this round. */
export function lowFilesystems(results: readonly CheckResult[], watched: readonly WatchedFilesystem[]): WatchedFilesystem[] {
  return watched.filter((w) => results.some((r) => r.check === w.check && r.status !== 'ok'));
}

/**
 * Frees disk space in this order, stopping as soon as every low filesystem has enough:
 * Docker's dangling images, stopped containers that are not the current stack's, Docker's
 * build cache, then the journal. Never a volume, never a file of the family's. A stage
 * runs only when what it frees lives on a low filesystem. Containers' own logs need no
 * stage: the image's daemon.json caps them (`local` driver, 3 × 10 MB per container).
 */
export function freeDiskSpaceRepair(opts: FreeDiskSpaceOptions): Repair {
  const enough = (s: Space) => s.enough;
  const hold = opts.holdStack ?? (<T>(_reason: string, fn: () => Promise<T>) => fn());
  const vacuum = opts.vacuumJournal ?? journalctlVacuum;
  const journalDir = opts.journalDir ?? '/var/log/journal';

  return {
    name: FREE_DISK_SPACE_REPAIR,
    // Docker first: while it does not answer, its restart comes before prunes that need it.
    answers: (results) => lowFilesystems(results, opts.filesystems).length > 0 && resultNamed(results, DOCKER_RESPONSIVE_CHECK)?.status !== 'unhealthy',
    async needed(results) {
      const spaces = await Promise.all(lowFilesystems(results, opts.filesystems).map(space));
      return spaces.some((s) => !enough(s));
    },
    limits: FREE_DISK_SPACE_LIMITS,
    timeoutMs: 20 * 60_000,
    async run(results): Promise<RepairOutcome> {
      const report = await freeDiskSpace(opts, lowFilesystems(results, opts.filesystems), { enough, hold, vacuum, journalDir });
      return summarize(report);
    },
  };
}

export interface FreeDiskSpaceReport {
  stages: StageReport[];
  before: Space[];
  after: Space[];
  enough: boolean;
}

/** The stages themselves, for the repair and for tests that want each stage's numbers. */
export async function freeDiskSpace(
  opts: Pick<FreeDiskSpaceOptions, 'docker' | 'currentStackLabel'>,
  low: readonly WatchedFilesystem[],
  how: { enough: (s: Space) => boolean; hold: <T>(reason: string, fn: () => Promise<T>) => Promise<T>; vacuum: () => Promise<string>; journalDir: string },
): Promise<FreeDiskSpaceReport> {
  const measure = async () => {
    const all = await Promise.all(low.map(space));
    // Data and root may be one filesystem (a test, a future layout): count it once.
    return all.filter((s, i) => all.findIndex((o) => o.device === s.device) === i);
  };
  const before = await measure();
  let current = before;
  const stages: StageReport[] = [];
  const devices = new Set(before.map((s) => s.device));
  const onLowFilesystem = async (path: string) => devices.has((await stat(path)).dev);
  const allEnough = () => current.every(how.enough);

  // dockerode's types omit info's options, which its code takes (abortSignal).
  const infoWithOptions = opts.docker as unknown as { info(o: { abortSignal: AbortSignal }): Promise<{ DockerRootDir?: string }> };
  const info = infoWithOptions.info({ abortSignal: AbortSignal.timeout(10_000) });
  const dockerRoot = await info.then((i) => i.DockerRootDir, () => undefined);
  const dockerStage = async (stage: StageName, act: () => Promise<string>) => {
    if (dockerRoot === undefined) return { stage, ran: false, freedBytes: 0, message: 'Docker did not answer' };
    if (!(await onLowFilesystem(dockerRoot).catch(() => false))) return { stage, ran: false, freedBytes: 0, message: `Docker's data (${dockerRoot}) is not on a low filesystem` };
    return { stage, ran: true, freedBytes: 0, message: await act() };
  };

  const plan: { stage: StageName; go: () => Promise<StageReport> }[] = [
    {
      stage: 'dangling-images',
      go: () =>
        dockerStage('dangling-images', async () => {
          // Untagged images only: what the stack runs is tagged (preload records `repo:tag`).
          const r = await how.hold('pruning dangling images', () => opts.docker.pruneImages({ filters: { dangling: ['true'] } }));
          return `${deletedCount(r.ImagesDeleted)} images and layers deleted, Docker counts ${bytes(r.SpaceReclaimed ?? 0)}`;
        }),
    },
    {
      stage: 'old-containers',
      go: async () => {
        const label = opts.currentStackLabel();
        if (label === undefined) return { stage: 'old-containers', ran: false, freedBytes: 0, message: "the current stack is not known yet, so no container is taken for an old one" };
        return dockerStage('old-containers', async () => {
          // Stopped containers only (prune never touches running ones), and never the current stack's.
          const [r, images] = await how.hold('pruning old containers', async () => {
            const containers = await opts.docker.pruneContainers({ filters: { 'label!': [label] } });
            // The images only those containers used are dangling now; the first stage could not take them.
            return [containers, (containers.ContainersDeleted?.length ?? 0) > 0 ? await opts.docker.pruneImages({ filters: { dangling: ['true'] } }) : undefined] as const;
          });
          const left = images ? `, then ${deletedCount(images.ImagesDeleted)} images and layers they left, ${bytes(images.SpaceReclaimed ?? 0)}` : '';
          return `${r.ContainersDeleted?.length ?? 0} stopped containers removed, Docker counts ${bytes(r.SpaceReclaimed ?? 0)}${left}`;
        });
      },
    },
    {
      stage: 'build-cache',
      go: () =>
        dockerStage('build-cache', async () => {
          const r = (await how.hold('pruning the build cache', () => opts.docker.pruneBuilder())) as { SpaceReclaimed?: number; CachesDeleted?: string[] | null };
          return `${r.CachesDeleted?.length ?? 0} build cache entries removed, Docker counts ${bytes(r.SpaceReclaimed ?? 0)}`;
        }),
    },
    {
      stage: 'old-logs',
      go: async () => {
        if (!(await onLowFilesystem(how.journalDir).catch(() => false))) return { stage: 'old-logs', ran: false, freedBytes: 0, message: `the journal (${how.journalDir}) is not on a low filesystem` };
        return { stage: 'old-logs', ran: true, freedBytes: 0, message: await how.vacuum() };
      },
    },
  ];

  for (const { stage, go } of plan) {
    if (allEnough()) break;
    let report: StageReport;
    try {
      report = await go();
    } catch (err) {
      report = { stage, ran: true, freedBytes: 0, message: `failed: ${(err as Error).message}` };
    }
    const next = await measure();
    // A stage passed over freed nothing, whatever else on the box wrote or deleted meanwhile.
    if (report.ran) report.freedBytes = next.reduce((sum, s, i) => sum + Math.max(0, s.freeBytes - (current[i]?.freeBytes ?? s.freeBytes)), 0);
    current = next;
    stages.push(report);
  }
  return { stages, before, after: current, enough: allEnough() };
}

/** Docker lists untaggings and deletions together; only deletions free space. */
const deletedCount = (items: readonly { Deleted?: string }[] | null | undefined) => (items ?? []).filter((i) => i.Deleted).length;

function summarize(report: FreeDiskSpaceReport): RepairOutcome {
  const freedBytes = report.stages.reduce((sum, s) => sum + s.freedBytes, 0);
  const ran = report.stages.filter((s) => s.ran);
  const failed = ran.filter((s) => s.message.startsWith('failed:'));
  const perStage = report.stages.map((s) => `${s.stage} ${s.ran ? bytes(s.freedBytes) : 'passed over'} (${s.message})`).join('; ');
  const now = report.after.map((s) => `${bytes(s.freeBytes)} free on ${s.path}`).join(', ');
  const message = `Freed ${bytes(freedBytes)}: ${perStage || 'nothing to do'}. Now ${now}${report.enough ? '.' : '; still low: the rest is the family\'s own files or the system.'}`;
  return { ok: report.enough || (failed.length === 0 && freedBytes > 0), message, freedBytes };
}
