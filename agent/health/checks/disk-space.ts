import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommandOutcome } from '../../../shared/process/run-command.ts';
import { worstStatus, type CheckResult, type CheckStatus, type HealthCheck, type Metric } from './check.ts';
import { bytes, count, percent } from './wording.ts';

/** One filesystem's space as statfs gives it; `availBytes` is what programs other than root's reserve may still use (as df and node-exporter count it). */
export interface FilesystemSpace {
  mountPoint: string;
  sizeBytes: number;
  availBytes: number;
  /** Inodes: 0 on filesystems that do not count them. */
  files: number;
  filesFree: number;
}

/** Docker's data-root, as last measured. */
export interface DockerDataRootUse {
  path: string;
  bytes: number;
  /** Epoch ms of the measurement. */
  measuredAt: number;
}

export interface DiskSpaceFacts {
  /** The data partition (photos, databases, Docker); absent when it cannot be read. */
  data?: FilesystemSpace;
  root?: FilesystemSpace;
  docker?: DockerDataRootUse;
  /** The systemd journal's files on disk. */
  journal?: { path: string; bytes: number };
}

/** Low means free space is below both the share and the byte count (so a big disk is judged by bytes, a small one by share). */
export interface SpaceLimit {
  share: number;
  bytes: number;
}

export interface FilesystemThresholds {
  degraded: SpaceLimit;
  unhealthy: SpaceLimit;
  /** Free inodes as a share of all. */
  inodesDegradedShare: number;
  inodesUnhealthyShare: number;
}

export interface DiskSpaceThresholds {
  data: FilesystemThresholds;
  root: FilesystemThresholds;
  /** While the data disk is low, Docker holding more than this share of its used space points at leftovers to prune. */
  dockerShareOfUsed: number;
  /** Journal size above which journald's cap is evidently not in force. */
  journalBytes: number;
}

const GB = 1e9;
const MB = 1e6;

/**
 * Why these numbers:
 * - data: 10 % and 20 GB is a few weeks' margin for a family's phones uploading after a
 *   holiday, yet a 2 TB disk at 5 % (100 GB) is not flagged; under 5 % and 5 GB, Postgres
 *   and Immich are close to failing writes. The repairs' space reserve (1 %, at most 1 GiB)
 *   sits below both.
 * - root: nothing the family keeps grows there, only the journal (capped at 200 MB by
 *   journald.conf.d) and small state, so filling means something is wrong; the box must
 *   still write its logs and state to boot, hence it turns unhealthy while there are still
 *   a few hundred MB (5 % and 256 MB) and degraded earlier (15 % and 768 MB) than data.
 * - inodes: Docker's layers are many small files; 5 % of inodes free is the same margin
 *   node-exporter's usual alert uses, 1 % means file creation is about to fail.
 * - journal: journald.conf.d caps it at 200 MB; 1.5 times that means the cap is not in force.
 */
export const DEFAULT_DISK_SPACE_THRESHOLDS: DiskSpaceThresholds = {
  data: {
    degraded: { share: 0.1, bytes: 20 * GB },
    unhealthy: { share: 0.05, bytes: 5 * GB },
    inodesDegradedShare: 0.05,
    inodesUnhealthyShare: 0.01,
  },
  root: {
    degraded: { share: 0.15, bytes: 768 * MB },
    unhealthy: { share: 0.05, bytes: 256 * MB },
    inodesDegradedShare: 0.05,
    inodesUnhealthyShare: 0.01,
  },
  dockerShareOfUsed: 0.5,
  journalBytes: 300 * MB,
};

type Role = 'data' | 'root';

const NAMES: Record<Role, { check: string; disk: string }> = {
  data: { check: 'data-disk-space', disk: 'The data disk' },
  root: { check: 'root-disk-space', disk: 'The system disk' },
};

function isLow(free: number, size: number, limit: SpaceLimit): boolean {
  return free < size * limit.share && free < limit.bytes;
}

function spaceStatus(fs: FilesystemSpace, t: FilesystemThresholds): { bytes: CheckStatus; inodes: CheckStatus } {
  const bytesStatus: CheckStatus = isLow(fs.availBytes, fs.sizeBytes, t.unhealthy) ? 'unhealthy' : isLow(fs.availBytes, fs.sizeBytes, t.degraded) ? 'degraded' : 'ok';
  let inodes: CheckStatus = 'ok';
  if (fs.files > 0) {
    const share = fs.filesFree / fs.files;
    inodes = share < t.inodesUnhealthyShare ? 'unhealthy' : share < t.inodesDegradedShare ? 'degraded' : 'ok';
  }
  return { bytes: bytesStatus, inodes };
}

const ACTIONS: Record<Role, Record<'degraded' | 'unhealthy', string>> = {
  data: {
    degraded: "Delete old videos or move them off the box; the box is clearing Docker's unused files.",
    unhealthy: "New photos and messages cannot be saved for long: delete old videos or move them off the box now; the box is clearing Docker's unused files.",
  },
  root: {
    degraded: 'The box is clearing old logs and unused files. If this message stays, ask for help.',
    unhealthy: 'The box may not start again if this disk fills: it is clearing old logs; do not switch it off, and ask for help if this message stays.',
  },
};

function filesystemResult(role: Role, fs: FilesystemSpace, t: FilesystemThresholds): CheckResult {
  const s = spaceStatus(fs, t);
  const status = worstStatus(s.bytes, s.inodes);
  let reason = `${NAMES[role].disk} has ${bytes(fs.availBytes)} free of ${bytes(fs.sizeBytes)} (${percent(fs.sizeBytes > 0 ? fs.availBytes / fs.sizeBytes : 0)}).`;
  if (s.inodes !== 'ok') {
    reason += ` It has room for only ${count(fs.filesFree, 'more file')} (${percent(fs.filesFree / fs.files)} of its file slots).`;
  }
  const result: CheckResult = { check: NAMES[role].check, status, reason, metrics: filesystemMetrics(fs) };
  if (status !== 'ok') result.action = ACTIONS[role][status];
  return result;
}

function filesystemMetrics(fs: FilesystemSpace): Metric[] {
  const labels = { mountpoint: fs.mountPoint };
  return [
    { name: 'node_filesystem_avail_bytes', help: 'Filesystem space available to non-root users in bytes.', type: 'gauge', labels, value: fs.availBytes },
    { name: 'node_filesystem_size_bytes', help: 'Filesystem size in bytes.', type: 'gauge', labels, value: fs.sizeBytes },
    { name: 'node_filesystem_files_free', help: 'Filesystem total free file nodes.', type: 'gauge', labels, value: fs.filesFree },
    { name: 'node_filesystem_files', help: 'Filesystem total file nodes.', type: 'gauge', labels, value: fs.files },
  ];
}

function dockerResult(docker: DockerDataRootUse, data: FilesystemSpace | undefined, t: DiskSpaceThresholds): CheckResult {
  const metrics: Metric[] = [
    { name: 'memu_docker_data_root_bytes', help: "Disk space Docker's data-root uses (images, containers, their logs), as last measured.", type: 'gauge', labels: { path: docker.path }, value: docker.bytes },
    { name: 'memu_docker_data_root_measured_timestamp_seconds', help: "When Docker's data-root was last measured.", type: 'gauge', labels: { path: docker.path }, value: Math.floor(docker.measuredAt / 1000) },
  ];
  if (!data) return { check: 'docker-disk-use', status: 'ok', reason: `Apps and their images use ${bytes(docker.bytes)}.`, metrics };
  const used = Math.max(0, data.sizeBytes - data.availBytes);
  const shareOfUsed = used > 0 ? docker.bytes / used : 0;
  const reason = `Apps and their images use ${bytes(docker.bytes)} of the data disk (${percent(data.sizeBytes > 0 ? docker.bytes / data.sizeBytes : 0)}).`;
  const dataLow = spaceStatus(data, t.data).bytes !== 'ok';
  if (dataLow && shareOfUsed > t.dockerShareOfUsed) {
    return {
      check: 'docker-disk-use',
      status: 'degraded',
      reason: `${reason} That is ${percent(shareOfUsed)} of the used space, more than the family's own files.`,
      action: 'The box is removing app images and build files that no app uses any more.',
      metrics,
    };
  }
  return { check: 'docker-disk-use', status: 'ok', reason, metrics };
}

function journalResult(journal: { path: string; bytes: number }, t: DiskSpaceThresholds): CheckResult {
  const metrics: Metric[] = [{ name: 'memu_journal_disk_bytes', help: "Disk space the system journal's files use.", type: 'gauge', labels: { path: journal.path }, value: journal.bytes }];
  const reason = `The system's logs take ${bytes(journal.bytes)}.`;
  if (journal.bytes > t.journalBytes) {
    return { check: 'log-disk-use', status: 'degraded', reason: `${reason} They should stay under ${bytes(t.journalBytes)}.`, action: 'The box is deleting the oldest logs.', metrics };
  }
  return { check: 'log-disk-use', status: 'ok', reason, metrics };
}

/** Judges free space and inodes of the data and root filesystems, Docker's share and the journal's size. */
export function evaluateDiskSpace(facts: DiskSpaceFacts, thresholds: DiskSpaceThresholds = DEFAULT_DISK_SPACE_THRESHOLDS): CheckResult[] {
  const results: CheckResult[] = [];
  if (facts.data) results.push(filesystemResult('data', facts.data, thresholds.data));
  if (facts.root) results.push(filesystemResult('root', facts.root, thresholds.root));
  if (facts.docker) results.push(dockerResult(facts.docker, facts.data, thresholds));
  if (facts.journal) results.push(journalResult(facts.journal, thresholds));
  return results;
}

// ---- reading the device ----

/** statfs of a mount point; undefined when the path does not exist. */
export async function readFilesystemSpace(mountPoint: string): Promise<FilesystemSpace | undefined> {
  try {
    const s = await statfs(mountPoint);
    return { mountPoint, sizeBytes: s.blocks * s.bsize, availBytes: s.bavail * s.bsize, files: s.files, filesFree: s.ffree };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Bytes allocated to the files in `dir` and its subdirectories one level down (journald
 * keeps `<machine-id>/*.journal`); undefined when `dir` does not exist. A few dozen files,
 * so cheap enough for every run.
 */
export async function readJournalBytes(dir: string): Promise<number | undefined> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let total = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      for (const f of await readdir(path, { withFileTypes: true }).catch(() => [])) {
        if (f.isFile()) total += await allocatedBytes(join(path, f.name));
      }
    } else if (e.isFile()) {
      total += await allocatedBytes(path);
    }
  }
  return total;
}

async function allocatedBytes(path: string): Promise<number> {
  // A journal file rotated away between readdir and stat counts as nothing.
  return stat(path).then(
    (s) => s.blocks * 512,
    () => 0,
  );
}

/**
 * Disk space Docker's data-root takes: statfs when it is a filesystem of its own (cheap),
 * otherwise `nice du -sx` in a separate process (the walk costs seconds of I/O on a big
 * overlay2 tree, so the check runs it rarely; -x skips the containers' overlay mounts).
 * undefined when the directory does not exist or du gives no total.
 */
export async function measureDockerDataRoot(path: string, dataDir: string): Promise<number | undefined> {
  const [own, parent] = await Promise.all([stat(path).catch(() => undefined), stat(dataDir).catch(() => undefined)]);
  if (!own) return undefined;
  if (parent && own.dev !== parent.dev) {
    const s = await statfs(path);
    return (s.blocks - s.bfree) * s.bsize;
  }
  // Lowest CPU priority: the walk can wait, the family's uploads cannot.
  const r = await runCommandOutcome('nice', ['-n', '19', 'du', '-s', '-x', '-B1', '--', path]);
  // du exits 1 when files vanish under it (containers come and go) but still prints the total.
  const total = Number(r.stdout.split('\t')[0]);
  return r.stdout && Number.isFinite(total) ? total : undefined;
}

export interface DiskSpaceCheckOptions {
  /** The data partition's mount point (config.dataDir). */
  dataDir?: string;
  rootDir?: string;
  /** Docker's data-root (overlays/common/etc/docker/daemon.json). */
  dockerDataRoot?: string;
  journalDir?: string;
  thresholds?: DiskSpaceThresholds;
  intervalMs?: number;
  /** How often Docker's data-root is measured when it is not its own filesystem. */
  dockerMeasureEveryMs?: number;
  /** How long a run waits for a due Docker measurement before answering with the previous one. */
  dockerMeasureWaitMs?: number;
  measureDocker?: (path: string, dataDir: string) => Promise<number | undefined>;
  now?: () => number;
}

/**
 * Free space every minute (statfs and a few stats); Docker's data-root every 6 hours, in
 * the background: a run waits for it briefly and otherwise reports the last measurement,
 * so a slow walk never delays the health answer.
 */
export function createDiskSpaceCheck(opts: DiskSpaceCheckOptions = {}): HealthCheck {
  const dataDir = opts.dataDir ?? '/var/lib/memu';
  const rootDir = opts.rootDir ?? '/';
  const dockerPath = opts.dockerDataRoot ?? join(dataDir, 'docker');
  const journalDir = opts.journalDir ?? '/var/log/journal';
  const every = opts.dockerMeasureEveryMs ?? 6 * 3600_000;
  const waitMs = opts.dockerMeasureWaitMs ?? 1000;
  const measure = opts.measureDocker ?? measureDockerDataRoot;
  const now = opts.now ?? Date.now;
  let docker: DockerDataRootUse | undefined;
  let lastAttempt = -Infinity;
  let measuring: Promise<void> | undefined;

  const dockerUse = async (): Promise<DockerDataRootUse | undefined> => {
    const started = now();
    if (!measuring && started - lastAttempt >= every) {
      lastAttempt = started;
      measuring = measure(dockerPath, dataDir)
        .then((b) => {
          docker = b === undefined ? undefined : { path: dockerPath, bytes: b, measuredAt: started };
        })
        .catch(() => {})
        .finally(() => {
          measuring = undefined;
        });
    }
    if (measuring) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([measuring, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
    }
    return docker;
  };

  return {
    name: 'disk-space',
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      const [data, root, journalBytes, dockerFacts] = await Promise.all([readFilesystemSpace(dataDir), readFilesystemSpace(rootDir), readJournalBytes(journalDir), dockerUse()]);
      const facts: DiskSpaceFacts = {};
      if (data) facts.data = data;
      if (root) facts.root = root;
      if (dockerFacts) facts.docker = dockerFacts;
      if (journalBytes !== undefined) facts.journal = { path: journalDir, bytes: journalBytes };
      return evaluateDiskSpace(facts, opts.thresholds);
    },
  };
}
