import { z } from 'zod';

/**
 * restic's `--json` output (restic 0.17–0.18, doc/075_scripting.rst), as typed values.
 * Each command writes one JSON object per line on stdout (`status` while it works, a
 * `summary` at the end) and its errors as JSON lines on stderr (`error` per item, one
 * `exit_error` before a non-zero exit); some output stays plain text (prune's report,
 * backend retries on stderr), so lines that are not a known message are returned as
 * `undefined` rather than treated as an error. Fields restic adds later are ignored.
 */

/** The commands whose lines share `message_type` names but not their fields. */
export type ResticJsonCommand = 'backup' | 'restore' | 'check' | 'other';

export interface BackupStatus {
  type: 'backup-status';
  percentDone: number;
  secondsElapsed?: number;
  /** Only while restic knows the total (not for a stream, whose total it cannot know). */
  secondsRemaining?: number;
  totalFiles?: number;
  filesDone?: number;
  totalBytes?: number;
  bytesDone?: number;
  errorCount?: number;
  currentFiles: string[];
}

export interface BackupSummary {
  type: 'backup-summary';
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirsNew: number;
  dirsChanged: number;
  dirsUnmodified: number;
  /** Bytes added to the repository before and after compression. */
  dataAdded: number;
  dataAddedPacked: number;
  totalFilesProcessed: number;
  totalBytesProcessed: number;
  totalDurationSeconds: number;
  backupStart?: string;
  backupEnd?: string;
  /** Absent only with `--dry-run` or `--skip-if-unchanged`, which this engine never passes. */
  snapshotId?: string;
}

/** An item restic could not read or save; the backup goes on and exits 3 (or 1 for a stream). */
export interface ItemError {
  type: 'item-error';
  message: string;
  during: string;
  item: string;
}

export interface RestoreStatus {
  type: 'restore-status';
  percentDone: number;
  secondsElapsed?: number;
  totalFiles?: number;
  filesRestored?: number;
  totalBytes?: number;
  bytesRestored?: number;
}

export interface RestoreSummary {
  type: 'restore-summary';
  totalFiles: number;
  filesRestored: number;
  filesSkipped: number;
  totalBytes: number;
  bytesRestored: number;
}

export interface CheckSummary {
  type: 'check-summary';
  numErrors: number;
  /** Pack files whose content does not match their id: the ones `restic repair packs` would remove. */
  brokenPacks: string[];
  suggestRepairIndex: boolean;
  suggestPrune: boolean;
}

/** A line of check's report of a problem (several lines make one problem; they end in `\n`). */
export interface CheckError {
  type: 'check-error';
  message: string;
}

/** The last word of a command that failed: restic's exit code and why. */
export interface ExitError {
  type: 'exit-error';
  code: number;
  message: string;
}

export interface Initialized {
  type: 'initialized';
  repositoryId: string;
  repository: string;
}

export type BackupMessage = BackupStatus | BackupSummary | ItemError | ExitError;
export type RestoreMessage = RestoreStatus | RestoreSummary | ItemError | ExitError;
export type CheckMessage = CheckSummary | CheckError | ExitError;
export type ResticMessage = BackupMessage | RestoreMessage | CheckMessage | Initialized;

const count = z.number().int().nonnegative();

const backupStatus = z.object({
  message_type: z.literal('status'),
  percent_done: z.number().default(0),
  seconds_elapsed: z.number().optional(),
  seconds_remaining: z.number().optional(),
  total_files: count.optional(),
  files_done: count.optional(),
  total_bytes: count.optional(),
  bytes_done: count.optional(),
  error_count: count.optional(),
  current_files: z.array(z.string()).default([]),
});

const backupSummary = z.object({
  message_type: z.literal('summary'),
  files_new: count.default(0),
  files_changed: count.default(0),
  files_unmodified: count.default(0),
  dirs_new: count.default(0),
  dirs_changed: count.default(0),
  dirs_unmodified: count.default(0),
  data_added: count.default(0),
  data_added_packed: count.default(0),
  total_files_processed: count.default(0),
  total_bytes_processed: count.default(0),
  total_duration: z.number().default(0),
  backup_start: z.string().optional(),
  backup_end: z.string().optional(),
  snapshot_id: z.string().optional(),
});

const itemError = z.object({
  message_type: z.literal('error'),
  error: z.object({ message: z.string() }),
  during: z.string().default(''),
  item: z.string().default(''),
});

const restoreStatus = z.object({
  message_type: z.literal('status'),
  percent_done: z.number().default(0),
  seconds_elapsed: z.number().optional(),
  total_files: count.optional(),
  files_restored: count.optional(),
  total_bytes: count.optional(),
  bytes_restored: count.optional(),
});

const restoreSummary = z.object({
  message_type: z.literal('summary'),
  total_files: count.default(0),
  files_restored: count.default(0),
  files_skipped: count.default(0),
  total_bytes: count.default(0),
  bytes_restored: count.default(0),
});

const checkSummary = z.object({
  message_type: z.literal('summary'),
  num_errors: count.default(0),
  broken_packs: z.array(z.string()).nullable().default(null),
  suggest_repair_index: z.boolean().default(false),
  suggest_prune: z.boolean().default(false),
});

const checkError = z.object({ message_type: z.literal('error'), message: z.string() });
const exitError = z.object({ message_type: z.literal('exit_error'), code: z.number().int(), message: z.string() });
const initialized = z.object({ message_type: z.literal('initialized'), id: z.string(), repository: z.string() });

function jsonObject(line: string): Record<string, unknown> | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A backup's `status` and `seconds_remaining` for a stream are nonsense (restic divides by a total of 0): dropped. */
function plausibleEta(seconds: number | undefined, totalBytes: number | undefined): number | undefined {
  if (seconds === undefined || !totalBytes) return undefined;
  return seconds >= 0 && seconds < 365 * 24 * 3600 ? seconds : undefined;
}

function parseExitOrInit(obj: Record<string, unknown>): ExitError | Initialized | undefined {
  const exit = exitError.safeParse(obj);
  if (exit.success) return { type: 'exit-error', code: exit.data.code, message: exit.data.message };
  const init = initialized.safeParse(obj);
  if (init.success) return { type: 'initialized', repositoryId: init.data.id, repository: init.data.repository };
  return undefined;
}

/** A file restic could not read or write: the backup or restore goes on without it. */
function parseItemError(obj: Record<string, unknown>): ItemError | undefined {
  const e = itemError.safeParse(obj);
  return e.success ? { type: 'item-error', message: e.data.error.message, during: e.data.during, item: e.data.item } : undefined;
}

/** The message restic ends a failed command with; any other line of an unknown type is not one. */
function parseExitError(obj: Record<string, unknown>): ExitError | undefined {
  const m = parseExitOrInit(obj);
  return m?.type === 'exit-error' ? m : undefined;
}

export function parseBackupLine(line: string): BackupMessage | undefined {
  const obj = jsonObject(line);
  if (!obj) return undefined;
  switch (obj.message_type) {
    case 'status': {
      const s = backupStatus.safeParse(obj);
      if (!s.success) return undefined;
      const d = s.data;
      return {
        type: 'backup-status',
        percentDone: d.percent_done,
        secondsElapsed: d.seconds_elapsed,
        secondsRemaining: plausibleEta(d.seconds_remaining, d.total_bytes),
        totalFiles: d.total_files,
        filesDone: d.files_done,
        totalBytes: d.total_bytes,
        bytesDone: d.bytes_done,
        errorCount: d.error_count,
        currentFiles: d.current_files,
      };
    }
    case 'summary': {
      const s = backupSummary.safeParse(obj);
      if (!s.success) return undefined;
      const d = s.data;
      return {
        type: 'backup-summary',
        filesNew: d.files_new,
        filesChanged: d.files_changed,
        filesUnmodified: d.files_unmodified,
        dirsNew: d.dirs_new,
        dirsChanged: d.dirs_changed,
        dirsUnmodified: d.dirs_unmodified,
        dataAdded: d.data_added,
        dataAddedPacked: d.data_added_packed,
        totalFilesProcessed: d.total_files_processed,
        totalBytesProcessed: d.total_bytes_processed,
        totalDurationSeconds: d.total_duration,
        backupStart: d.backup_start,
        backupEnd: d.backup_end,
        snapshotId: d.snapshot_id,
      };
    }
    case 'error':
      return parseItemError(obj);
    default:
      return parseExitError(obj);
  }
}

export function parseRestoreLine(line: string): RestoreMessage | undefined {
  const obj = jsonObject(line);
  if (!obj) return undefined;
  switch (obj.message_type) {
    case 'status': {
      const s = restoreStatus.safeParse(obj);
      if (!s.success) return undefined;
      const d = s.data;
      return {
        type: 'restore-status',
        percentDone: d.percent_done,
        secondsElapsed: d.seconds_elapsed,
        totalFiles: d.total_files,
        filesRestored: d.files_restored,
        totalBytes: d.total_bytes,
        bytesRestored: d.bytes_restored,
      };
    }
    case 'summary': {
      const s = restoreSummary.safeParse(obj);
      if (!s.success) return undefined;
      const d = s.data;
      return {
        type: 'restore-summary',
        totalFiles: d.total_files,
        filesRestored: d.files_restored,
        filesSkipped: d.files_skipped,
        totalBytes: d.total_bytes,
        bytesRestored: d.bytes_restored,
      };
    }
    case 'error':
      return parseItemError(obj);
    default:
      return parseExitError(obj);
  }
}

export function parseCheckLine(line: string): CheckMessage | undefined {
  const obj = jsonObject(line);
  if (!obj) return undefined;
  switch (obj.message_type) {
    case 'summary': {
      const s = checkSummary.safeParse(obj);
      if (!s.success) return undefined;
      const d = s.data;
      return {
        type: 'check-summary',
        numErrors: d.num_errors,
        brokenPacks: d.broken_packs ?? [],
        suggestRepairIndex: d.suggest_repair_index,
        suggestPrune: d.suggest_prune,
      };
    }
    case 'error': {
      const e = checkError.safeParse(obj);
      return e.success ? { type: 'check-error', message: e.data.message } : undefined;
    }
    default:
      return parseExitError(obj);
  }
}

/** Lines of commands without their own messages (init, forget, unlock, cat, dump): `initialized` and `exit_error`. */
export function parseOtherLine(line: string): ExitError | Initialized | undefined {
  const obj = jsonObject(line);
  return obj ? parseExitOrInit(obj) : undefined;
}

export function parseResticLine(command: ResticJsonCommand, line: string): ResticMessage | undefined {
  switch (command) {
    case 'backup':
      return parseBackupLine(line);
    case 'restore':
      return parseRestoreLine(line);
    case 'check':
      return parseCheckLine(line);
    case 'other':
      return parseOtherLine(line);
  }
}

/** A snapshot as `restic snapshots --json` lists it (restic ≥ 0.17 keeps the backup's summary in it). */
export interface ResticSnapshot {
  id: string;
  time: string;
  hostname: string;
  paths: string[];
  tags: string[];
  summary?: {
    backupStart: string;
    backupEnd: string;
    filesNew: number;
    filesChanged: number;
    filesUnmodified: number;
    dataAdded: number;
    totalFilesProcessed: number;
    totalBytesProcessed: number;
  };
}

const snapshotSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/),
  time: z.string(),
  hostname: z.string().default(''),
  paths: z.array(z.string()).default([]),
  tags: z.array(z.string()).nullish(),
  summary: z
    .object({
      backup_start: z.string(),
      backup_end: z.string(),
      files_new: count.default(0),
      files_changed: count.default(0),
      files_unmodified: count.default(0),
      data_added: count.default(0),
      total_files_processed: count.default(0),
      total_bytes_processed: count.default(0),
    })
    .optional(),
});

/** `restic snapshots --json`: a JSON array; throws when it is not one (a restic that changed its output). */
export function parseSnapshotList(stdout: string): ResticSnapshot[] {
  let value: unknown;
  try {
    value = JSON.parse(stdout.trim() || '[]');
  } catch {
    throw new Error(`restic snapshots --json did not print JSON: ${stdout.slice(0, 200)}`);
  }
  const list = z.array(snapshotSchema).safeParse(value);
  if (!list.success) throw new Error(`restic snapshots --json printed an unexpected list: ${list.error.issues[0]?.message ?? 'unknown problem'}`);
  return list.data.map((s) => ({
    id: s.id,
    time: s.time,
    hostname: s.hostname,
    paths: s.paths,
    tags: s.tags ?? [],
    summary: s.summary && {
      backupStart: s.summary.backup_start,
      backupEnd: s.summary.backup_end,
      filesNew: s.summary.files_new,
      filesChanged: s.summary.files_changed,
      filesUnmodified: s.summary.files_unmodified,
      dataAdded: s.summary.data_added,
      totalFilesProcessed: s.summary.total_files_processed,
      totalBytesProcessed: s.summary.total_bytes_processed,
    },
  }));
}

/** `restic version --json` → `0.18.0`; undefined when the output is not that message (restic < 0.17 prints text). */
export function parseVersion(stdout: string): string | undefined {
  const obj = jsonObject(stdout.split('\n')[0] ?? '');
  if (obj?.message_type === 'version' && typeof obj.version === 'string') return obj.version;
  const text = /^restic ([0-9]+\.[0-9]+\.[0-9]+)/.exec(stdout.trim());
  return text?.[1];
}

/** `0.18.0` ≥ `0.17.0`, comparing numbers. */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const b = minimum.split('.').map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}
