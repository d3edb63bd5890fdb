import { describe, expect, it } from 'vitest';
import { backupHealthReasons } from '../../../../agent/backups/backup-health.ts';
import type { BackupSettings } from '../../../../agent/backups/backup-settings.ts';
import type { BackupState } from '../../../../agent/backups/backup-state.ts';

const HOUR = 3600_000;
const NOW = Date.UTC(2026, 11, 5, 12);
const settings = (addedAt = NOW - 30 * 24 * HOUR): BackupSettings => ({
  format: 'memu-backup-settings/1',
  dailyTime: '03:30',
  targets: [{ id: 't-0000000a', kind: 'usb-drive', label: 'USB drive', addedAt }],
});
const success = (at: number) => ({ at, runId: 'r', bytesProcessed: 1, bytesAdded: 1, durationMs: 1, filesProcessed: 1, warnings: 0 });
const state = (t: BackupState['targets'][string]): BackupState => ({ format: 'memu-backup-state/1', targets: { 't-0000000a': t } });
const codes = (s: BackupSettings, st: BackupState) => backupHealthReasons(s, st, NOW).map((r) => r.code);

describe('backup health reasons', () => {
  it('a box with no backup target is not degraded by it (the Backups card says so): every new box would be, and updates commit only on good health', () => {
    const none: BackupSettings = { ...settings(), targets: [] };
    expect(codes(none, { format: 'memu-backup-state/1', targets: {} })).toEqual([]);
  });

  it('a backup up to 2 days old is fine; older is a reason naming the target and the age', () => {
    expect(codes(settings(), state({ lastSuccess: success(NOW - 47 * HOUR) }))).toEqual([]);
    const [reason] = backupHealthReasons(settings(), state({ lastSuccess: success(NOW - 73 * HOUR) }), NOW);
    expect(reason).toMatchObject({ code: 'backup-stale', message: 'The last backup to USB drive was 3 days ago.', since: NOW - 73 * HOUR + 48 * HOUR });
  });

  it('says why the recent runs failed, and a target that never worked is a reason at its first failure', () => {
    const failure = { at: NOW - HOUR, reason: 'repository-unreachable', message: 'No USB backup drive is plugged in.' };
    expect(backupHealthReasons(settings(), state({ lastSuccess: success(NOW - 80 * HOUR), lastFailure: failure }), NOW)[0]!.message).toBe(
      'The last backup to USB drive was 3 days ago. The last attempt failed: No USB backup drive is plugged in.',
    );
    expect(codes(settings(NOW - HOUR * 2), state({ lastFailure: failure }))).toEqual(['backup-never-succeeded']);
    // A new target that has not had its first run yet is not a problem.
    expect(codes(settings(NOW - HOUR * 2), state({}))).toEqual([]);
    // A failure before the last success does not count.
    expect(codes(settings(), state({ lastSuccess: success(NOW - HOUR), lastFailure: { ...failure, at: NOW - 2 * HOUR } }))).toEqual([]);
  });

  it('a failed integrity check is a reason of its own', () => {
    expect(codes(settings(), state({ lastSuccess: success(NOW - HOUR), lastCheck: { at: NOW - HOUR, ok: false, message: 'pack 1a2b is damaged' } }))).toEqual(['backup-check-failed']);
  });
});
