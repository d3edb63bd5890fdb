import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { MANIFEST_PATH_IN_SNAPSHOT, parseBackupManifest, RUN_ID_PATTERN, type BackupManifest } from '../../shared/contracts/backup-manifest.ts';
import { BackupSetDamagedError, BackupSetIncompleteError, BackupSetNotFoundError } from './backup-errors.ts';
import { parseSnapshotList, type ResticSnapshot } from './restic-messages.ts';
import { runRestic, type ResticAccess } from './restic-process.ts';

/**
 * A backup set: the snapshots one run made, found by their tags. Every snapshot of a run
 * carries `memu-backup` and `memu-run:<run id>`; a database dump's also
 * `memu-database:<name>`; the run's last snapshot (files, memu.db's copy and the
 * manifest) also `memu-set`. restic writes a snapshot's file only after all its data, so
 * a run that stopped anywhere before its last snapshot left a set without `memu-set`:
 * incomplete, never offered for restore, and removed by retention.
 */
export const SET_TAGS = {
  backup: 'memu-backup',
  runPrefix: 'memu-run:',
  databasePrefix: 'memu-database:',
  complete: 'memu-set',
} as const;

export interface SetSnapshot {
  id: string;
  time: string;
  kind: 'database' | 'final';
  /** For a database dump. */
  database?: string;
  /** restic's record of the backup that made it (restic ≥ 0.17). */
  summary?: ResticSnapshot['summary'];
}

export interface BackupSetInfo {
  runId: string;
  host: string;
  /** When the run's first snapshot started. */
  startedAt: string;
  /** When the run's last snapshot ended (complete sets only). */
  finishedAt?: string;
  complete: boolean;
  snapshots: SetSnapshot[];
  /** The snapshot holding the files, memu.db and the manifest (complete sets only). */
  finalSnapshotId?: string;
  /** What restic read for the set, and what it had to add to the repository for it. */
  bytesProcessed: number;
  bytesAdded: number;
  /** The last snapshot's files: new, changed since the run before, unchanged. */
  files?: { new: number; changed: number; unmodified: number; processed: number };
}

/** `20261205T185000Z-3fa1c2`: sortable by time, unique by its random part. */
export function makeRunId(now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export function runTags(runId: string): string[] {
  return [SET_TAGS.backup, `${SET_TAGS.runPrefix}${runId}`];
}

function tagValue(tags: readonly string[], prefix: string): string | undefined {
  return tags.find((t) => t.startsWith(prefix))?.slice(prefix.length);
}

/**
 * The repository's snapshots as backup sets, oldest first. Snapshots without our tags
 * (made by hand with restic) are not part of any set and are left out.
 */
export function groupSnapshotsIntoSets(snapshots: readonly ResticSnapshot[]): BackupSetInfo[] {
  const byRun = new Map<string, ResticSnapshot[]>();
  for (const s of snapshots) {
    if (!s.tags.includes(SET_TAGS.backup)) continue;
    const runId = tagValue(s.tags, SET_TAGS.runPrefix);
    if (!runId || !RUN_ID_PATTERN.test(runId)) continue;
    byRun.set(runId, [...(byRun.get(runId) ?? []), s]);
  }
  const sets: BackupSetInfo[] = [];
  for (const [runId, list] of byRun) {
    const ordered = [...list].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    const finals = ordered.filter((s) => s.tags.includes(SET_TAGS.complete));
    const final = finals.at(-1);
    const snapshots: SetSnapshot[] = ordered.map((s) => {
      const database = tagValue(s.tags, SET_TAGS.databasePrefix);
      return { id: s.id, time: s.time, kind: database !== undefined ? 'database' : 'final', ...(database !== undefined ? { database } : {}), summary: s.summary };
    });
    const sum = (pick: (x: NonNullable<ResticSnapshot['summary']>) => number) => ordered.reduce((n, s) => n + (s.summary ? pick(s.summary) : 0), 0);
    sets.push({
      runId,
      host: ordered[0]!.hostname,
      startedAt: ordered[0]!.summary?.backupStart ?? ordered[0]!.time,
      finishedAt: final?.summary?.backupEnd ?? final?.time,
      complete: final !== undefined,
      snapshots,
      finalSnapshotId: final?.id,
      bytesProcessed: sum((x) => x.totalBytesProcessed),
      bytesAdded: sum((x) => x.dataAdded),
      files: final?.summary && {
        new: final.summary.filesNew,
        changed: final.summary.filesChanged,
        unmodified: final.summary.filesUnmodified,
        processed: final.summary.totalFilesProcessed,
      },
    });
  }
  return sets.sort((a, b) => (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));
}

export async function listBackupSets(access: ResticAccess): Promise<BackupSetInfo[]> {
  const r = await runRestic(access, {
    parse: 'other',
    args: ['snapshots', '--tag', SET_TAGS.backup],
    operation: 'snapshots',
    consequence: 'Nothing was changed.',
    collectStdout: true,
  });
  return groupSnapshotsIntoSets(parseSnapshotList(r.stdout));
}

/** The set with this run id (or the newest complete one for `latest`), complete, or a typed error. */
export function findCompleteSet(sets: readonly BackupSetInfo[], runId: string | 'latest', repository: string): BackupSetInfo {
  if (runId === 'latest') {
    const latest = sets.filter((s) => s.complete).at(-1);
    if (!latest) throw new BackupSetNotFoundError(repository, 'latest (there is no complete set yet)');
    return latest;
  }
  const set = sets.find((s) => s.runId === runId);
  if (!set) throw new BackupSetNotFoundError(repository, runId);
  if (!set.complete) throw new BackupSetIncompleteError(repository, runId);
  return set;
}

/** Collects a stream's bytes (a small file from `restic dump`), refusing more than `limit`. */
function collectInto(limit: number): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > limit) return done(new Error(`more than ${limit} bytes where a small file was expected`));
      chunks.push(chunk);
      done();
    },
  });
  return { sink, bytes: () => Buffer.concat(chunks) };
}

const MANIFEST_LIMIT = 1024 * 1024;

/**
 * The manifest of a complete set, read from its last snapshot and checked against the
 * set: the same run, and every database snapshot it names still there.
 */
export async function readSetManifest(access: ResticAccess, set: BackupSetInfo): Promise<BackupManifest> {
  if (!set.finalSnapshotId) throw new BackupSetIncompleteError(access.displayLocation, set.runId);
  const out = collectInto(MANIFEST_LIMIT);
  await runRestic(access, {
    parse: 'other',
    args: ['dump', set.finalSnapshotId, MANIFEST_PATH_IN_SNAPSHOT],
    operation: `dump of set ${set.runId}'s manifest`,
    consequence: 'Nothing was changed.',
    stdoutTo: out.sink,
  });
  let value: unknown;
  try {
    value = JSON.parse(out.bytes().toString('utf8'));
  } catch {
    throw new BackupSetDamagedError(access.displayLocation, set.runId, 'its manifest is not JSON');
  }
  let manifest: BackupManifest;
  try {
    manifest = parseBackupManifest(value, `the manifest of backup set ${set.runId}`);
  } catch (err) {
    throw new BackupSetDamagedError(access.displayLocation, set.runId, (err as Error).message);
  }
  if (manifest.runId !== set.runId) throw new BackupSetDamagedError(access.displayLocation, set.runId, `its manifest belongs to run ${manifest.runId}`);
  for (const db of manifest.databases) {
    const snapshot = set.snapshots.find((s) => s.id === db.snapshotId);
    if (!snapshot || snapshot.database !== db.name) {
      throw new BackupSetDamagedError(access.displayLocation, set.runId, `the dump of database ${db.name} (snapshot ${db.snapshotId.slice(0, 8)}) is no longer in the repository`);
    }
  }
  return manifest;
}
