import { describe, expect, it } from 'vitest';
import {
  parseBackupLine,
  parseCheckLine,
  parseOtherLine,
  parseRestoreLine,
  parseSnapshotList,
  parseVersion,
  versionAtLeast,
  type BackupMessage,
  type CheckMessage,
} from '../../../../agent/backups/restic-messages.ts';
import { lines, recorded, RECORDED_RESTIC_VERSION } from './restic-fixtures.ts';

/** restic's --json messages, parsed from output recorded with restic 0.18.0 (test/fixtures/restic/). */
describe(`restic ${RECORDED_RESTIC_VERSION} JSON messages`, () => {
  it('reads the version from `restic version --json`, and from the text of older versions', () => {
    expect(parseVersion(recorded('version').stdout)).toBe(RECORDED_RESTIC_VERSION);
    expect(parseVersion('restic 0.14.0 compiled with go1.19.8 on linux/amd64\n')).toBe('0.14.0');
    expect(parseVersion('nonsense')).toBeUndefined();
    expect(versionAtLeast('0.18.0', '0.17.0')).toBe(true);
    expect(versionAtLeast('0.17.0', '0.17.0')).toBe(true);
    expect(versionAtLeast('0.14.0', '0.17.0')).toBe(false);
    expect(versionAtLeast('1.0.0', '0.17.3')).toBe(true);
  });

  it('reads the new repository id from `init`', () => {
    const [message] = lines(recorded('init').stdout).map(parseOtherLine);
    expect(message).toMatchObject({ type: 'initialized', repository: 'repo' });
    expect(message?.type === 'initialized' && message.repositoryId).toMatch(/^[0-9a-f]{64}$/);
  });

  it("reads a files backup's progress and its summary with the snapshot id", () => {
    const messages = lines(recorded('backup-files').stdout).map(parseBackupLine);
    expect(messages.every((m) => m !== undefined)).toBe(true);
    const statuses = messages.filter((m): m is Extract<BackupMessage, { type: 'backup-status' }> => m?.type === 'backup-status');
    expect(statuses.length).toBeGreaterThan(0);
    for (const s of statuses) {
      expect(s.totalBytes).toBe(10_000_008);
      expect(s.bytesDone).toBeLessThanOrEqual(s.totalBytes!);
    }
    const summary = messages.at(-1);
    expect(summary).toMatchObject({ type: 'backup-summary', filesNew: 41, filesChanged: 0, filesUnmodified: 0, totalFilesProcessed: 41, totalBytesProcessed: 10_000_008 });
    expect(summary?.type === 'backup-summary' && summary.snapshotId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('sees an incremental backup: one changed file, the rest unmodified', () => {
    const summary = lines(recorded('backup-files-incremental').stdout).map(parseBackupLine).at(-1);
    expect(summary).toMatchObject({ type: 'backup-summary', filesNew: 0, filesChanged: 1, filesUnmodified: 40 });
  });

  it("drops the nonsense time remaining of a stream (restic knows no total) and keeps its bytes", () => {
    const messages = lines(recorded('backup-stdin-from-command').stdout).map(parseBackupLine);
    const statuses = messages.filter((m) => m?.type === 'backup-status');
    expect(statuses.length).toBeGreaterThan(0);
    // Recorded lines say seconds_remaining near 10^12: a family would read "tens of thousands of years left".
    expect(lines(recorded('backup-stdin-from-command').stdout).some((l) => /"seconds_remaining":[0-9]{10,}/.test(l))).toBe(true);
    for (const s of statuses) expect(s?.type === 'backup-status' && s.secondsRemaining).toBeUndefined();
    expect(messages.at(-1)).toMatchObject({ type: 'backup-summary', filesNew: 1, totalBytesProcessed: 3_000_000 });
  });

  it("reads a failed dump's item error and exit error from stderr", () => {
    const run = recorded('backup-dump-failed');
    expect(run.exitCode).toBe(1);
    const messages = lines(run.stderr).map(parseBackupLine).filter((m) => m !== undefined);
    expect(messages).toEqual([
      { type: 'item-error', message: 'failed to save /immich.pgdump: Fatal: command failed: exit status 1', during: 'archival', item: '/immich.pgdump' },
      { type: 'exit-error', code: 1, message: 'Fatal: unable to save snapshot: failed to save /immich.pgdump: Fatal: command failed: exit status 1' },
    ]);
    // The dump's own stderr is passed through as text, not JSON.
    expect(parseBackupLine(lines(run.stderr)[0]!)).toBeUndefined();
  });

  it("reads a restore's progress and summary", () => {
    const messages = lines(recorded('restore').stdout).map(parseRestoreLine);
    // 39 photos of 250 000 bytes, the one changed to 8 bytes, and an 8-byte config.json.
    expect(messages.at(-1)).toEqual({ type: 'restore-summary', totalFiles: 43, filesRestored: 43, filesSkipped: 0, totalBytes: 9_750_016, bytesRestored: 9_750_016 });
    expect(messages.slice(0, -1).every((m) => m?.type === 'restore-status')).toBe(true);
  });

  it("reads check's summary: no errors, then a broken pack with its problem lines", () => {
    expect(parseCheckLine(recorded('check-ok').stdout.trim())).toEqual({ type: 'check-summary', numErrors: 0, brokenPacks: [], suggestRepairIndex: false, suggestPrune: false });
    const damaged = recorded('check-damaged');
    const summary = parseCheckLine(damaged.stdout.trim());
    expect(summary).toMatchObject({ type: 'check-summary', numErrors: 1 });
    expect(summary?.type === 'check-summary' && summary.brokenPacks).toHaveLength(1);
    const errors = lines(damaged.stderr).map(parseCheckLine).filter((m): m is CheckMessage => m !== undefined);
    expect(errors.filter((m) => m.type === 'check-error').length).toBeGreaterThanOrEqual(2);
    expect(errors.at(-1)).toEqual({ type: 'exit-error', code: 1, message: 'Fatal: repository contains errors' });
  });

  it('lists snapshots with their tags and the summary restic keeps in each', () => {
    const snapshots = parseSnapshotList(recorded('snapshots').stdout);
    expect(snapshots).toHaveLength(4);
    for (const s of snapshots) {
      expect(s.id).toMatch(/^[0-9a-f]{64}$/);
      expect(s.hostname).toBe('memu');
      expect(s.tags).toContain('memu-backup');
      expect(s.summary?.backupEnd).toBeTruthy();
    }
    expect(snapshots.find((s) => s.tags.includes('memu-database:synapse'))?.paths).toEqual(['/synapse.pgdump']);
    expect(() => parseSnapshotList('Fatal: not JSON')).toThrow(/did not print JSON/);
    expect(() => parseSnapshotList('[{"id":"short"}]')).toThrow(/unexpected list/);
  });

  it('ignores lines that are not messages: plain text, other JSON, broken JSON', () => {
    expect(parseBackupLine('loading indexes...')).toBeUndefined();
    expect(parseBackupLine('{"message_type":"verbose_status","action":"new"}')).toBeUndefined();
    expect(parseBackupLine('{"message_type":"status", "percent_done":')).toBeUndefined();
    expect(parseOtherLine('[1,2]')).toBeUndefined();
  });
});
