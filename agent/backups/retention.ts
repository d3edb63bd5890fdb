import type { BackupSetInfo } from './backup-sets.ts';
import { runRestic, type ResticAccess } from './restic-process.ts';

/**
 * Which backup sets to keep, decided over whole sets (restic's own `forget --keep-daily`
 * would judge each snapshot alone and could keep a set's files but not its dumps):
 * the newest complete set always; the newest complete set of each of the last `daily`
 * days, `weekly` ISO weeks and `monthly` months that have one (restic's rule: periods
 * without a backup do not count); days, weeks and months in UTC. An incomplete set is
 * forgotten once a newer set is complete (its run cannot still be going: runs of one
 * repository never overlap) or once it is older than `incompleteGraceMs`.
 */
export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  /** How long an incomplete set may be a run still in progress (default 24 h). */
  incompleteGraceMs?: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 7, weekly: 4, monthly: 12 };
const DEFAULT_INCOMPLETE_GRACE_MS = 24 * 3600 * 1000;

export type KeepReason = 'latest' | 'daily' | 'weekly' | 'monthly' | 'maybe-running';

export interface RetentionDecision {
  keep: { runId: string; reasons: KeepReason[] }[];
  forget: { runId: string; reason: 'expired' | 'incomplete' }[];
}

function dayKey(t: Date): string {
  return t.toISOString().slice(0, 10);
}

/** ISO 8601 week: the week's Thursday decides its year. */
function weekKey(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

function monthKey(t: Date): string {
  return t.toISOString().slice(0, 7);
}

function setTime(set: BackupSetInfo): number {
  return Date.parse(set.startedAt);
}

export function selectSetsToForget(sets: readonly BackupSetInfo[], policy: RetentionPolicy, now: Date): RetentionDecision {
  const grace = policy.incompleteGraceMs ?? DEFAULT_INCOMPLETE_GRACE_MS;
  const complete = sets.filter((s) => s.complete).sort((a, b) => setTime(b) - setTime(a));
  const reasons = new Map<string, KeepReason[]>();
  const keepFor = (set: BackupSetInfo, reason: KeepReason) => reasons.set(set.runId, [...(reasons.get(set.runId) ?? []), reason]);

  if (complete[0]) keepFor(complete[0], 'latest');
  const buckets: [KeepReason, number, (t: Date) => string][] = [
    ['daily', policy.daily, dayKey],
    ['weekly', policy.weekly, weekKey],
    ['monthly', policy.monthly, monthKey],
  ];
  for (const [reason, count, key] of buckets) {
    const seen = new Set<string>();
    for (const set of complete) {
      const k = key(new Date(setTime(set)));
      if (seen.has(k)) continue;
      if (seen.size >= count) break;
      seen.add(k);
      keepFor(set, reason);
    }
  }

  const newestComplete = complete[0] ? setTime(complete[0]) : -Infinity;
  const decision: RetentionDecision = { keep: [], forget: [] };
  for (const set of [...sets].sort((a, b) => setTime(a) - setTime(b))) {
    if (set.complete) {
      const why = reasons.get(set.runId);
      if (why) decision.keep.push({ runId: set.runId, reasons: why });
      else decision.forget.push({ runId: set.runId, reason: 'expired' });
    } else if (setTime(set) < newestComplete || now.getTime() - setTime(set) > grace) {
      decision.forget.push({ runId: set.runId, reason: 'incomplete' });
    } else {
      decision.keep.push({ runId: set.runId, reasons: ['maybe-running'] });
    }
  }
  return decision;
}

/** Every snapshot of every set the decision forgets, and none of a set it keeps: sets go whole. */
export function snapshotsToForget(sets: readonly BackupSetInfo[], decision: RetentionDecision): string[] {
  const forgotten = new Set(decision.forget.map((f) => f.runId));
  return sets.filter((s) => forgotten.has(s.runId)).flatMap((s) => s.snapshots.map((snap) => snap.id));
}

/**
 * Forgets the sets the policy lets go, every snapshot of each, and prunes the data only
 * they used (`restic forget --prune <ids>`), in one restic run.
 */
export async function applyRetention(access: ResticAccess, sets: readonly BackupSetInfo[], policy: RetentionPolicy, now: Date): Promise<RetentionDecision & { snapshotsForgotten: number }> {
  const decision = selectSetsToForget(sets, policy, now);
  const ids = snapshotsToForget(sets, decision);
  if (ids.length > 0) {
    await runRestic(access, {
      parse: 'other',
      args: ['forget', '--prune', ...ids],
      operation: 'forget --prune',
      consequence: 'Some old backups may still be there; they are forgotten at the next try. Every set that was kept is intact.',
    });
    access.log.info({ repository: access.displayLocation, sets: decision.forget, snapshots: ids.length }, 'old backup sets forgotten and pruned');
  }
  return { ...decision, snapshotsForgotten: ids.length };
}
