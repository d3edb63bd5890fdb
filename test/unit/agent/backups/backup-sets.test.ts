import { describe, expect, it } from 'vitest';
import { BackupSetIncompleteError, BackupSetNotFoundError } from '../../../../agent/backups/backup-errors.ts';
import { findCompleteSet, groupSnapshotsIntoSets, makeRunId, runTags } from '../../../../agent/backups/backup-sets.ts';
import { parseSnapshotList, type ResticSnapshot } from '../../../../agent/backups/restic-messages.ts';
import { RUN_ID_PATTERN } from '../../../../shared/contracts/backup-manifest.ts';
import { recorded } from './restic-fixtures.ts';

describe('backup sets from snapshots', () => {
  it('run ids sort by time and are unique', () => {
    const a = makeRunId(new Date('2026-12-05T03:00:00.123Z'));
    expect(a).toMatch(RUN_ID_PATTERN);
    expect(a.startsWith('20261205T030000Z-')).toBe(true);
    expect(makeRunId(new Date('2026-12-05T03:00:00Z'))).not.toBe(makeRunId(new Date('2026-12-05T03:00:00Z')));
    expect(runTags(a)).toEqual(['memu-backup', `memu-run:${a}`]);
  });

  it('groups the recorded snapshots by run: complete sets have their last snapshot, a stopped run does not', () => {
    const sets = groupSnapshotsIntoSets(parseSnapshotList(recorded('snapshots').stdout));
    expect(sets.map((s) => ({ runId: s.runId, complete: s.complete, kinds: s.snapshots.map((x) => x.kind) }))).toEqual([
      { runId: '20261205T120000Z-abcdef', complete: true, kinds: ['final'] },
      { runId: '20261206T120000Z-abcdef', complete: true, kinds: ['final', 'database'] },
      { runId: '20261208T120000Z-abcdef', complete: false, kinds: ['database'] },
    ]);
    const second = sets[1]!;
    expect(second.snapshots.find((s) => s.kind === 'database')?.database).toBe('synapse');
    expect(second.finalSnapshotId).toBe(second.snapshots[0]!.id);
    // restic's summaries: the files' 1 changed of 41 and the 3 MB dump.
    expect(second.files).toEqual({ new: 0, changed: 1, unmodified: 40, processed: 41 });
    expect(second.bytesProcessed).toBe(9_750_016 + 3_000_000);
    expect(sets[2]!.finalSnapshotId).toBeUndefined();
  });

  it('leaves out snapshots that are not ours: no memu-backup tag, or no valid run id', () => {
    const snap = (tags: string[]): ResticSnapshot => ({ id: 'f'.repeat(64), time: '2026-12-05T03:00:00Z', hostname: 'memu', paths: ['/x'], tags });
    expect(groupSnapshotsIntoSets([snap(['memu-run:20261205T030000Z-abcdef', 'memu-set']), snap(['memu-backup', 'memu-run:yesterday', 'memu-set']), snap([])])).toEqual([]);
  });

  it('finds a complete set by run id or the latest, and says why it cannot', () => {
    const sets = groupSnapshotsIntoSets(parseSnapshotList(recorded('snapshots').stdout));
    expect(findCompleteSet(sets, 'latest', 'repo').runId).toBe('20261206T120000Z-abcdef');
    expect(findCompleteSet(sets, '20261205T120000Z-abcdef', 'repo').runId).toBe('20261205T120000Z-abcdef');
    expect(() => findCompleteSet(sets, '20261208T120000Z-abcdef', 'repo')).toThrow(BackupSetIncompleteError);
    expect(() => findCompleteSet(sets, '20261208T120000Z-abcdef', 'repo')).toThrow(/incomplete: its run stopped before it finished.*Restore from a complete set/);
    expect(() => findCompleteSet(sets, '20200101T000000Z-000000', 'repo')).toThrow(BackupSetNotFoundError);
    expect(() => findCompleteSet([], 'latest', 'repo')).toThrow(/no complete set yet/);
  });
});
