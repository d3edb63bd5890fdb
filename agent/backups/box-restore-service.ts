import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileDurably, writeJsonDurably } from '../../shared/files/durable-files.ts';
import { MaintenanceBusyError, type MaintenanceLock } from '../maintenance/index.ts';
import type { AgentModule } from '../module.ts';
import { adoptBackupPassword, BACKUP_PASSWORD_PATTERN } from './backup-password.ts';
import { DEVICE_DRIVE_ROOTS, findBackupDrive, mountBackupDrive, unmountBackupDrive, type BackupDriveRoots } from './backup-drive.ts';
import type { BackupModule } from './backup-module.ts';
import { DEFAULT_BACKUP_SETTINGS, describeTarget, resticTarget, targetFromInput, TargetInputError, type BackupTargetSettings, type TargetInput } from './backup-settings.ts';
import { boxRestorePaths, finishBoxRestore, readBoxRestoreRecord, restoreOntoThisBox, type BoxRestoreDeps, type BoxRestoreProgress, type BoxRestoreRecord } from './box-restore.ts';

/**
 * The wizard's "restore from a backup" as a service: takes the source and the recovery
 * kit's password, runs the restore in the background under the maintenance lock, and says
 * how far it got. At start, finishes a restore a power cut stopped after memu.db was in.
 */

export type BoxRestoreState =
  | { state: 'idle' }
  | { state: 'running'; source: string; progress: BoxRestoreProgress }
  | { state: 'failed'; source: string; stage: string; message: string }
  | { state: 'done'; record: BoxRestoreRecord };

export interface BoxRestoreService extends AgentModule {
  /** Whether a drive labelled MEMU-BACKUP is plugged in (the wizard offers it first). */
  driveAttached(): Promise<boolean>;
  /** Checks the input and starts the restore; throws with what to fix when it cannot start. */
  begin(input: TargetInput, password: string): Promise<void>;
  state(): Promise<BoxRestoreState>;
}

export interface BoxRestoreServiceOptions extends Pick<BoxRestoreDeps, 'stack' | 'databases' | 'familyDb'> {
  dataDir: string;
  engine: Pick<BackupModule, 'openWithPassword' | 'passwordFile'>;
  /** Whether memu.db says setup is finished: after a power cut, it tells whether the restored memu.db is in. */
  setupFinished: () => boolean;
  /** Called once the old box's data is in: what read its files before (the backup settings) reads them again. */
  restored?: () => Promise<void>;
  lock: MaintenanceLock;
  driveRoots?: BackupDriveRoots;
  now?: () => number;
}

export function createBoxRestoreService(o: BoxRestoreServiceOptions, log: Logger): BoxRestoreService {
  const driveRoots = o.driveRoots ?? DEVICE_DRIVE_ROOTS;
  let running: { source: string; progress: BoxRestoreProgress } | undefined;
  let failure: { source: string; stage: string; message: string } | undefined;

  /** Runs under the maintenance lock; `running` is set by begin(). */
  const run = async (target: BackupTargetSettings, source: string, password: string) => {
    // The typed password is tried from a file of the restore's own; it becomes the device's
    // only when the restored secrets bring it (they hold the same password).
    const passwordDir = join(o.dataDir, 'agent', 'box-restore-password');
    const passwordFile = join(passwordDir, 'password');
    try {
      await mkdir(passwordDir, { recursive: true, mode: 0o700 });
      await writeFileDurably(passwordFile, `${password}\n`, 0o600);
      if (target.kind === 'usb-drive') await mountBackupDrive(driveRoots, log);
      const repository = await o.engine.openWithPassword(resticTarget(target, driveRoots.mountPoint), passwordFile);
      await restoreOntoThisBox({ ...o, repository, source, log, onProgress: (p) => running && (running.progress = p) });
      await o.restored?.();
      // A backup without the secrets folder still leaves the box able to back up to the same place.
      await adoptBackupPassword(o.engine.passwordFile, password).catch((err: unknown) => log.warn({ reason: (err as Error).message }, 'the backup password was not adopted'));
    } catch (err) {
      failure = { source, stage: running?.progress.stage ?? 'opening', message: (err as Error).message };
    } finally {
      running = undefined;
      await rm(passwordDir, { recursive: true, force: true });
      if (target.kind === 'usb-drive') await unmountBackupDrive(driveRoots, log).catch(() => undefined);
    }
  };

  return {
    name: 'box-restore',
    async start() {
      const record = await readBoxRestoreRecord(o.dataDir);
      // memu.db was in when the power went (a fresh box's wizard is not finished): what is
      // left is starting the apps. Before that, the wizard offers the restore again.
      if (record && record.stage !== 'done' && (record.stage === 'starting' || o.setupFinished())) {
        // Not awaited: lifting the hold waits on a reconcile, which the modules after this one need not wait for.
        void finishBoxRestore(o.dataDir, o.stack, log)
          .then(() => writeJsonDurably(boxRestorePaths(o.dataDir).record, { ...record, stage: 'done', error: undefined, finishedAt: new Date((o.now ?? Date.now)()).toISOString() }, 0o600))
          .catch((err: unknown) => log.error({ err }, 'the restore stopped by a restart could not be finished'));
      }
    },
    async stop() {},
    async driveAttached() {
      return (await findBackupDrive(driveRoots)) !== undefined;
    },
    async begin(input, password) {
      const typed = password.trim().toUpperCase();
      if (!BACKUP_PASSWORD_PATTERN.test(typed)) {
        throw new Error('That is not a recovery kit password: it is six groups of five letters and digits, like 7KQ2M-4XD9P-..., printed on the recovery kit.');
      }
      if (running) throw new Error('A restore is already running.');
      let target: BackupTargetSettings;
      try {
        target = targetFromInput(input, DEFAULT_BACKUP_SETTINGS, (o.now ?? Date.now)());
      } catch (err) {
        if (err instanceof TargetInputError) throw new Error(`That backup address cannot be used: ${err.problems.join('; ')}.`);
        throw err;
      }
      if (target.kind === 'usb-drive' && !(await findBackupDrive(driveRoots))) {
        throw new Error('No backup drive is plugged in: plug in the drive labelled MEMU-BACKUP and try again.');
      }
      const busy = o.lock.holder();
      if (busy) throw new MaintenanceBusyError(busy, 'restore');
      const source = `${target.label}: ${describeTarget(target).address}`;
      // The state says "running" from here on.
      running = { source, progress: { stage: 'opening' } };
      failure = undefined;
      void o.lock.run('restore', () => run(target, source, typed), { wait: false }).catch((err: unknown) => {
        running = undefined;
        failure = { source, stage: 'opening', message: (err as Error).message };
        log.error({ err }, 'the restore could not start');
      });
    },
    async state() {
      if (running) return { state: 'running', source: running.source, progress: { ...running.progress } };
      if (failure) return { state: 'failed', ...failure };
      const record = await readBoxRestoreRecord(o.dataDir);
      if (record?.stage === 'done') return { state: 'done', record };
      if (record?.error) return { state: 'failed', source: record.source, stage: record.stage, message: record.error };
      if (record) return { state: 'failed', source: record.source, stage: record.stage, message: 'The restore was stopped by a restart of Memu before it finished.' };
      return { state: 'idle' };
    },
  };
}
