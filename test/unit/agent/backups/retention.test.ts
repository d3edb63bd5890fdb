import { describe, expect, it } from 'vitest';
import { groupSnapshotsIntoSets, type BackupSetInfo } from '../../../../agent/backups/backup-sets.ts';
import { selectSetsToForget, snapshotsToForget, type RetentionPolicy } from '../../../../agent/backups/retention.ts';
import { parseSnapshotList } from '../../../../agent/backups/restic-messages.ts';
import { recorded } from './restic-fixtures.ts';

let counter = 0;
/** A set started at `iso`, with a dump snapshot and (when complete) its last snapshot. */
function set(iso: string, complete = true): BackupSetInfo {
  const runId = `${iso.replace(/[-:]/g, '').replace(/\.\d+Z$|Z$/, '')}Z-${(counter++).toString(16).padStart(6, '0')}`;
  const hex = (n: number) => (counter * 10 + n).toString(16).padStart(64, '0');
  return {
    runId,
    host: 'memu',
    startedAt: iso,
    complete,
    snapshots: [{ id: hex(1), time: iso, kind: 'database', database: 'synapse' }, ...(complete ? [{ id: hex(2), time: iso, kind: 'final' as const }] : [])],
    finalSnapshotId: complete ? hex(2) : undefined,
    bytesProcessed: 0,
    bytesAdded: 0,
  };
}

const kept = (sets: BackupSetInfo[], policy: RetentionPolicy, now: string) =>
  selectSetsToForget(sets, policy, new Date(now)).keep.map((k) => sets.find((s) => s.runId === k.runId)!.startedAt);

/** Whole backup sets kept by day, ISO week and month (UTC), as restic counts them: periods without a backup do not count. */
describe('retention over backup sets', () => {
  it('keeps the newest set of each of the last N days that have one', () => {
    const sets = ['2026-03-01T03:00:00Z', '2026-03-02T03:00:00Z', '2026-03-02T15:00:00Z', '2026-03-05T03:00:00Z', '2026-03-06T03:00:00Z'].map((t) => set(t));
    expect(kept(sets, { daily: 3, weekly: 0, monthly: 0 }, '2026-03-06T12:00:00Z')).toEqual(['2026-03-02T15:00:00Z', '2026-03-05T03:00:00Z', '2026-03-06T03:00:00Z']);
  });

  it('adds the newest of each ISO week and month, and always the newest set', () => {
    // 2026-01-04 is a Sunday (ISO week 1 of 2026), 2026-01-05 a Monday (week 2).
    const sets = ['2025-12-20T03:00:00Z', '2025-12-31T03:00:00Z', '2026-01-04T03:00:00Z', '2026-01-05T03:00:00Z', '2026-01-06T03:00:00Z'].map((t) => set(t));
    expect(kept(sets, { daily: 0, weekly: 2, monthly: 0 }, '2026-01-07T00:00:00Z')).toEqual(['2026-01-04T03:00:00Z', '2026-01-06T03:00:00Z']);
    expect(kept(sets, { daily: 0, weekly: 0, monthly: 2 }, '2026-01-07T00:00:00Z')).toEqual(['2025-12-31T03:00:00Z', '2026-01-06T03:00:00Z']);
    expect(kept(sets, { daily: 0, weekly: 0, monthly: 0 }, '2026-01-07T00:00:00Z')).toEqual(['2026-01-06T03:00:00Z']);
    const decision = selectSetsToForget(sets, { daily: 1, weekly: 2, monthly: 2 }, new Date('2026-01-07T00:00:00Z'));
    expect(decision.keep.find((k) => k.runId === sets[4]!.runId)?.reasons).toEqual(['latest', 'daily', 'weekly', 'monthly']);
    expect(decision.forget.map((f) => f.reason)).toEqual(['expired', 'expired']);
  });

  it('ISO weeks at a year boundary: 2026-12-31 (Thursday) is in 2026-W53, 2027-01-04 (Monday) in 2027-W01', () => {
    const sets = ['2026-12-29T03:00:00Z', '2026-12-31T03:00:00Z', '2027-01-03T03:00:00Z', '2027-01-04T03:00:00Z'].map((t) => set(t));
    expect(kept(sets, { daily: 0, weekly: 3, monthly: 0 }, '2027-01-05T00:00:00Z')).toEqual(['2027-01-03T03:00:00Z', '2027-01-04T03:00:00Z']);
  });

  it('an incomplete set older than a complete one is forgotten; a recent one may still be running and stays', () => {
    const sets = [set('2026-03-01T03:00:00Z'), set('2026-03-02T03:00:00Z', false), set('2026-03-03T03:00:00Z'), set('2026-03-03T10:00:00Z', false)];
    const decision = selectSetsToForget(sets, { daily: 7, weekly: 0, monthly: 0 }, new Date('2026-03-03T11:00:00Z'));
    expect(decision.forget).toEqual([{ runId: sets[1]!.runId, reason: 'incomplete' }]);
    expect(decision.keep.find((k) => k.runId === sets[3]!.runId)?.reasons).toEqual(['maybe-running']);
    // A day later it cannot be running any more.
    const later = selectSetsToForget(sets, { daily: 7, weekly: 0, monthly: 0 }, new Date('2026-03-04T11:00:00Z'));
    expect(later.forget.map((f) => f.runId)).toEqual([sets[1]!.runId, sets[3]!.runId]);
  });

  it('incomplete sets never count as the newest set or a period\'s set', () => {
    const sets = [set('2026-03-01T03:00:00Z'), set('2026-03-02T03:00:00Z', false)];
    const decision = selectSetsToForget(sets, { daily: 1, weekly: 0, monthly: 0, incompleteGraceMs: 0 }, new Date('2026-03-02T04:00:00Z'));
    expect(decision.keep).toEqual([{ runId: sets[0]!.runId, reasons: ['latest', 'daily'] }]);
  });

  it('forgets every snapshot of a forgotten set and none of a kept one', () => {
    const sets = groupSnapshotsIntoSets(parseSnapshotList(recorded('snapshots').stdout));
    expect(sets.map((s) => [s.runId, s.complete, s.snapshots.length])).toEqual([
      ['20261205T120000Z-abcdef', true, 1],
      ['20261206T120000Z-abcdef', true, 2],
      ['20261208T120000Z-abcdef', false, 1],
    ]);
    // The recorded snapshots were all made within seconds; give the sets their run's day.
    const dated = sets.map((s) => ({ ...s, startedAt: `${s.runId.slice(0, 4)}-${s.runId.slice(4, 6)}-${s.runId.slice(6, 8)}T12:00:00Z` }));
    const decision = selectSetsToForget(dated, { daily: 1, weekly: 0, monthly: 0 }, new Date('2026-12-08T13:00:00Z'));
    expect(decision.keep.map((k) => k.runId)).toEqual(['20261206T120000Z-abcdef', '20261208T120000Z-abcdef']);
    const ids = snapshotsToForget(dated, decision);
    expect(ids).toEqual(dated[0]!.snapshots.map((s) => s.id));
    const all = selectSetsToForget(dated, { daily: 1, weekly: 0, monthly: 0, incompleteGraceMs: 0 }, new Date('2026-12-09T13:00:00Z'));
    expect(snapshotsToForget(dated, all).sort()).toEqual([...dated[0]!.snapshots, ...dated[2]!.snapshots].map((s) => s.id).sort());
  });
});
