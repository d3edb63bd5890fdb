import { readdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { worstStatus, type CheckResult, type CheckStatus, type HealthCheck, type Metric } from './check.ts';
import { count, day } from './wording.ts';

/** One line of /proc/self/mounts. */
export interface MountEntry {
  source: string;
  mountPoint: string;
  fstype: string;
  options: string[];
}

/** What ext4 keeps in its superblock about errors (/sys/fs/ext4/<device>/); times are epoch seconds, 0 when none. */
export interface Ext4Errors {
  /** The kernel's name for the device: vda2, mmcblk0p3, nvme0n1p4, dm-0. */
  device: string;
  errorsCount: number;
  firstErrorTime: number;
  lastErrorTime: number;
}

export interface FilesystemErrorFacts {
  rootDir: string;
  dataDir: string;
  mounts: MountEntry[];
  ext4: Ext4Errors[];
  /** Mount sources (as in `mounts`) → the kernel's device name (`/dev/disk/by-uuid/…` → `vda2`). */
  deviceNames?: Readonly<Record<string, string>>;
}

export type MountMode = 'rw' | 'ro';

export interface FilesystemExpectations {
  /** A future A/B image may mount the root read-only on purpose. */
  root: MountMode;
  data: MountMode;
  /** A missing data mount (everything would land on the small system disk) is unhealthy; tests off the device turn this off. */
  requireDataMount: boolean;
}

/**
 * Both filesystems writable, as the image mounts them today (/etc/fstab, var-lib-memu.mount).
 * Any recorded ext4 error is worth a check at the next boot, so there is no error threshold:
 * one error is degraded. A data or root filesystem the kernel turned read-only (errors=remount-ro)
 * stops the family's writes, so that is unhealthy.
 */
export const DEFAULT_FILESYSTEM_EXPECTATIONS: FilesystemExpectations = { root: 'rw', data: 'rw', requireDataMount: true };

type Role = 'root' | 'data';

const WORDS: Record<Role, { check: string; disk: string; lost: string }> = {
  root: { check: 'root-filesystem', disk: 'system disk', lost: 'settings and logs cannot be saved' },
  data: { check: 'data-filesystem', disk: 'data disk', lost: 'new photos and messages cannot be saved' },
};

const CHECK_AT_RESTART = 'Restart the box: it checks and repairs the disk as it starts.';
const REPLACE = "If it happens again, the disk is failing: copy the family's files off and replace it.";

/** The mount at `mountPoint`; the last line wins, as for the kernel. */
export function mountAt(mounts: readonly MountEntry[], mountPoint: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const m of mounts) if (m.mountPoint === mountPoint) found = m;
  return found;
}

function judge(role: Role, mountPoint: string, facts: FilesystemErrorFacts, expected: FilesystemExpectations): CheckResult | undefined {
  const w = WORDS[role];
  const mount = mountAt(facts.mounts, mountPoint);
  if (!mount) {
    if (role === 'root' || !expected.requireDataMount) return undefined;
    return {
      check: w.check,
      status: 'unhealthy',
      reason: `The data disk is not mounted at ${mountPoint}; the family's files cannot be reached.`,
      action: 'Restart the box. If this stays, the data disk may have failed or come loose: ask for help.',
      metrics: [],
    };
  }
  const device = facts.deviceNames?.[mount.source] ?? basename(mount.source);
  const readOnly = mount.options.includes('ro');
  const labels = { device: mount.source, fstype: mount.fstype, mountpoint: mountPoint };
  const metrics: Metric[] = [{ name: 'node_filesystem_readonly', help: 'Filesystem read-only status.', type: 'gauge', labels, value: readOnly ? 1 : 0 }];
  const sentences: string[] = [];
  const actions: string[] = [];
  let status: CheckStatus = 'ok';

  const errors = mount.fstype === 'ext4' ? facts.ext4.find((e) => e.device === device) : undefined;
  if (errors) {
    const errLabels = { device: mount.source, mountpoint: mountPoint };
    metrics.push(
      { name: 'memu_filesystem_errors', help: 'Errors the filesystem recorded in its superblock (cleared by a repair at boot).', type: 'gauge', labels: errLabels, value: errors.errorsCount },
      { name: 'memu_filesystem_last_error_timestamp_seconds', help: 'When the filesystem last recorded an error (0: never).', type: 'gauge', labels: errLabels, value: errors.lastErrorTime },
    );
    if (errors.errorsCount > 0) {
      status = 'degraded';
      let s = `The ${w.disk} reported ${count(errors.errorsCount, 'error')}`;
      if (errors.firstErrorTime > 0) s += ` since ${day(errors.firstErrorTime * 1000)}`;
      if (errors.lastErrorTime > 0 && errors.errorsCount > 1 && day(errors.lastErrorTime * 1000) !== day(errors.firstErrorTime * 1000)) {
        s += `, the last on ${day(errors.lastErrorTime * 1000)}`;
      }
      sentences.push(`${s}.`);
      actions.push(CHECK_AT_RESTART, REPLACE);
    }
  }

  const want = expected[role];
  if (readOnly && want === 'rw') {
    status = 'unhealthy';
    sentences.push(`The ${w.disk} has been switched to read-only, usually after disk errors: ${w.lost}.`);
    if (actions.length === 0) actions.push(CHECK_AT_RESTART, REPLACE);
  } else if (!readOnly && want === 'ro') {
    status = worstStatus(status, 'degraded');
    sentences.push(`The ${w.disk} is writable but should be read-only.`);
    actions.push('Restart the box; if this stays, ask for help.');
  }

  if (status === 'ok') {
    const reason = `The ${w.disk} reports no errors and is ${readOnly ? 'read-only, as it should be' : 'writable'}.`;
    return { check: w.check, status, reason, metrics };
  }
  return { check: w.check, status, reason: sentences.join(' '), action: [...new Set(actions)].join(' '), metrics };
}

/** Judges ext4 error counts and read-only remounts of the root and data filesystems. */
export function evaluateFilesystemErrors(facts: FilesystemErrorFacts, expected: FilesystemExpectations = DEFAULT_FILESYSTEM_EXPECTATIONS): CheckResult[] {
  const results: CheckResult[] = [];
  const root = judge('root', facts.rootDir, facts, expected);
  if (root) results.push(root);
  // The data directory on the root filesystem itself (nothing mounted there) is the missing-mount case, not a second root.
  const data = judge('data', facts.dataDir, facts, expected);
  if (data) results.push(data);
  return results;
}

// ---- reading the device ----

/** /proc/self/mounts; octal escapes (\040 for a space) decoded. */
export function parseMounts(text: string): MountEntry[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return text
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length >= 4)
    .map((f) => ({ source: unescape(f[0]!), mountPoint: unescape(f[1]!), fstype: f[2]!, options: f[3]!.split(',') }));
}

async function readNumber(path: string): Promise<number> {
  const n = Number((await readFile(path, 'utf8')).trim());
  return Number.isFinite(n) ? n : 0;
}

/** Every mounted ext4 filesystem's error record under /sys/fs/ext4 (each device's directory exists while it is mounted). */
export async function readExt4Errors(sysDir = '/sys'): Promise<Ext4Errors[]> {
  const dir = join(sysDir, 'fs', 'ext4');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: Ext4Errors[] = [];
  for (const device of names.sort()) {
    if (device === 'features') continue;
    const d = join(dir, device);
    try {
      const [errorsCount, firstErrorTime, lastErrorTime] = await Promise.all([readNumber(join(d, 'errors_count')), readNumber(join(d, 'first_error_time')), readNumber(join(d, 'last_error_time'))]);
      out.push({ device, errorsCount, firstErrorTime, lastErrorTime });
    } catch {
      // Unmounted between readdir and read, or a kernel without the error files.
    }
  }
  return out;
}

export interface FilesystemReaderOptions {
  procDir?: string;
  sysDir?: string;
  rootDir?: string;
  dataDir?: string;
}

/** The mounts, ext4 error records and device names the evaluation needs. */
export async function readFilesystemErrorFacts({ procDir = '/proc', sysDir = '/sys', rootDir = '/', dataDir = '/var/lib/memu' }: FilesystemReaderOptions = {}): Promise<FilesystemErrorFacts> {
  const [mountsText, ext4] = await Promise.all([readFile(join(procDir, 'self', 'mounts'), 'utf8'), readExt4Errors(sysDir)]);
  const mounts = parseMounts(mountsText);
  const deviceNames: Record<string, string> = {};
  for (const mp of [rootDir, dataDir]) {
    const m = mountAt(mounts, mp);
    // /dev/mapper/x and /dev/disk/by-*/ links resolve to the name /sys/fs/ext4 uses.
    if (m?.source.startsWith('/dev/')) deviceNames[m.source] = basename(await realpath(m.source).catch(() => m.source));
  }
  return { rootDir, dataDir, mounts, ext4, deviceNames };
}

export interface FilesystemErrorsCheckOptions extends FilesystemReaderOptions {
  expected?: FilesystemExpectations;
  intervalMs?: number;
}

/** Every minute: one procfs file and three sysfs files per ext4 filesystem. */
export function createFilesystemErrorsCheck(opts: FilesystemErrorsCheckOptions = {}): HealthCheck {
  return {
    name: 'filesystem-errors',
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      return evaluateFilesystemErrors(await readFilesystemErrorFacts(opts), opts.expected);
    },
  };
}
