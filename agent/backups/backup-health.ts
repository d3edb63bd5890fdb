import type { HealthReason } from '../health/index.ts';
import type { BackupSettings } from './backup-settings.ts';
import type { BackupState } from './backup-state.ts';

/** A target whose last good backup is older than this degrades the device. */
export const BACKUP_STALE_AFTER_MS = 2 * 24 * 3600_000;

const ago = (ms: number) => {
  const hours = Math.floor(ms / 3600_000);
  return hours >= 48 ? `${Math.floor(hours / 24)} days` : `${hours} hours`;
};

/**
 * Why backups degrade the device. A target whose last good backup is more than 2 days old
 * is a reason, with why the recent runs failed; so is a target that never had a good
 * backup and whose first run failed, a repository whose integrity check found damage, and
 * a restore drill that failed. A box with no target at all is told on the dashboard's
 * Backups card, not here: as a health reason it would leave every newly set-up box
 * degraded, and an update commits only on good health.
 */
export function backupHealthReasons(settings: BackupSettings, state: BackupState, now: number): HealthReason[] {
  const reasons: HealthReason[] = [];
  for (const target of settings.targets) {
    const t = state.targets[target.id] ?? {};
    const failure = t.lastFailure && (!t.lastSuccess || t.lastFailure.at > t.lastSuccess.at) ? t.lastFailure : undefined;
    const why = failure ? ` The last attempt failed: ${failure.message}` : '';
    if (t.lastSuccess && now - t.lastSuccess.at > BACKUP_STALE_AFTER_MS) {
      reasons.push({
        source: 'backups',
        code: 'backup-stale',
        message: `The last backup to ${target.label} was ${ago(now - t.lastSuccess.at)} ago.${why}`,
        action: failure ? 'Fix what the last attempt names, then press "Back up now" on the Backups page.' : 'Press "Back up now" on the Backups page.',
        since: t.lastSuccess.at + BACKUP_STALE_AFTER_MS,
      });
    } else if (!t.lastSuccess && (failure || now - target.addedAt > BACKUP_STALE_AFTER_MS)) {
      reasons.push({
        source: 'backups',
        code: 'backup-never-succeeded',
        message: `Nothing has been backed up to ${target.label} yet.${why}`,
        action: failure ? 'Fix what the last attempt names, then press "Back up now" on the Backups page.' : 'Press "Back up now" on the Backups page.',
        since: failure?.at ?? target.addedAt + BACKUP_STALE_AFTER_MS,
      });
    }
    if (t.lastCheck && !t.lastCheck.ok) {
      reasons.push({
        source: 'backups',
        code: 'backup-check-failed',
        message: `The integrity check of ${target.label} found a problem: ${t.lastCheck.message ?? 'see the agent log'}`,
        action: 'Keep the box backing up to its other targets; the Backups page and the README say how to repair the repository.',
        since: t.lastCheck.at,
      });
    }
  }
  const drill = state.lastDrill;
  if (drill && !drill.ok && settings.targets.some((t) => t.id === drill.target)) {
    reasons.push({
      source: 'backups',
      code: 'restore-drill-failed',
      message: `The last restore drill could not bring the backup back intact: ${drill.problems.join('; ')}`,
      action: 'Press "Back up now", then "Run a restore drill" on the Backups page; if it fails again, keep the box and its drive and ask for help.',
      since: drill.at,
    });
  }
  return reasons;
}
