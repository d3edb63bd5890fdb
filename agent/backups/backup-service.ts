import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Logger } from 'pino';
import type { FamilyDb } from '../family-db/index.ts';
import type { HealthSource } from '../health/index.ts';
import { MaintenanceBusyError } from '../maintenance/index.ts';
import type { AgentModule } from '../module.ts';
import { isNotFound } from '../../shared/errors.ts';
import { BackupError } from './backup-errors.ts';
import { backupHealthReasons } from './backup-health.ts';
import { createBackupModule, type BackupModule, type BackupModuleOptions } from './backup-module.ts';
import type { BackupRepository } from './backup-repository.ts';
import type { BackupProgress, DatabaseDumpSource } from './backup-run.ts';
import { CHECK_SUBSETS, parseDailyTime, scheduleDecision } from './backup-schedule.ts';
import { DEVICE_DRIVE_ROOTS, mountBackupDrive, prepareBackupDrive, unmountBackupDrive, type BackupDriveRoots } from './backup-drive.ts';
import { publicTarget, readBackupSettings, resticTarget, TargetNotFoundError, targetAddress, targetFromInput, writeBackupSettings, type BackupSettings, type BackupTargetSettings, type TargetInput } from './backup-settings.ts';
import { readBackupState, writeBackupState, type BackupState } from './backup-state.ts';
import type { BackupTarget } from './repository.ts';
import { DEFAULT_RETENTION } from './retention.ts';
import { backupApiRoutes } from './backup-api-routes.ts';
import type { RunTrigger, RunProgress, TargetStatus, BackupsStatus, BackupServiceOptions, BackupService } from './backup-service-api.ts';
import { runRestoreDrill, type RestoreDrillResult, type ThrowawayDatabase } from './restore-drill.ts';

/**
 * Backups as a feature of the box: the family's targets, a daily run at a set local time
 * (and a weekly integrity check), "back up now", progress, health, and single-item
 * restores. One run backs up to each target in turn; for each, the stack is held still
 * (the reconciler changes nothing) only while the databases are dumped, and the whole run
 * holds the device's maintenance lock, so a backup and an update never run at once.
 */

/** The data partition's folders a set holds besides the dumps and memu.db. */
export const BACKED_UP_PATHS = ['photos', 'synapse', 'config', 'secrets'] as const;
/** Where single items are restored to: under the photo library, so the family finds them in the photos' folder. */
export const RESTORE_ROOT = 'photos/restored';

export type { RunTrigger, RunProgress, TargetStatus, BackupsStatus, BackupServiceOptions, BackupService } from './backup-service-api.ts';

/** A folder name for a restore: what the admin typed, kept to letters, digits, spaces, dots, dashes. */
export function checkRestoreFolderName(name: string): string {
  const trimmed = name.trim();
  if (!/^[\p{L}\p{N}][\p{L}\p{N} ._-]{0,79}$/u.test(trimmed) || trimmed.includes('..')) {
    throw new Error(`The folder name ${JSON.stringify(name)} cannot be used: use letters, digits, spaces, dots, dashes or underscores (up to 80), starting with a letter or digit.`);
  }
  return trimmed;
}

export function createBackupService(opts: BackupServiceOptions, log: Logger): BackupService {
  const now = opts.now ?? Date.now;
  const engine = createBackupModule(opts, log);
  const driveRoots = opts.driveRoots ?? DEVICE_DRIVE_ROOTS;
  const repositories = new Map<string, BackupRepository>();
  let running: RunProgress | undefined;
  let timer: NodeJS.Timeout | undefined;
  let firstTick: NodeJS.Timeout | undefined;
  let stopped = false;
  let settingsCache: BackupSettings | undefined;
  let stateCache: BackupState | undefined;
  let settingsProblem: string | undefined;
  // Settings and state change one writer at a time.
  let writes: Promise<unknown> = Promise.resolve();
  const serialised = <T>(fn: () => Promise<T>): Promise<T> => {
    const result = writes.then(fn, fn);
    writes = result.catch(() => undefined);
    return result;
  };

  const settings = async (): Promise<BackupSettings> => {
    if (!settingsCache) settingsCache = await readBackupSettings(opts.dataDir);
    return settingsCache;
  };
  const state = async (): Promise<BackupState> => {
    if (!stateCache) stateCache = await readBackupState(opts.dataDir);
    return stateCache;
  };
  const updateState = (change: (s: BackupState) => void) =>
    serialised(async () => {
      const s = structuredClone(await state());
      change(s);
      await writeBackupState(opts.dataDir, s);
      stateCache = s;
    });

  const engineTarget = (t: BackupTargetSettings): BackupTarget => resticTarget(t, driveRoots.mountPoint);

  const findTarget = async (id: string): Promise<BackupTargetSettings> => {
    const target = (await settings()).targets.find((t) => t.id === id);
    if (!target) throw new TargetNotFoundError(id);
    return target;
  };

  /** Opens a target's repository, making it the first time (restic init takes one already there with this password). */
  const openTarget = async (target: BackupTargetSettings): Promise<BackupRepository> => {
    if (target.kind === 'usb-drive') await mountBackupDrive(driveRoots, log);
    const key = `${target.id} ${targetAddress(target, driveRoots.mountPoint)}`;
    const open = repositories.get(key);
    if (open) return open;
    const { repository } = await engine.init(engineTarget(target));
    repositories.set(key, repository);
    return repository;
  };

  const failureOf = (err: unknown) =>
    err instanceof BackupError ? { reason: err.reason, message: err.message } : { reason: 'failed', message: err instanceof Error ? err.message : String(err) };

  /** One target's backup: the stack held still only until the dumps are in, then the files, then retention (and the check when due). */
  const backUpTarget = async (target: BackupTargetSettings, progress: RunProgress, withCheck: boolean): Promise<void> => {
    progress.target = { id: target.id, label: target.label };
    progress.stage = 'starting';
    const tlog = log.child({ target: target.id });
    try {
      const repository = await openTarget(target);
      const databases = await opts.databases();
      let release!: () => void;
      const dumpsDone = new Promise<void>((resolve) => (release = resolve));
      let held!: () => void;
      const stackHeld = new Promise<void>((resolve) => (held = resolve));
      const holding = opts.stack.runExclusive('backup', async () => {
        progress.stackHeld = true;
        held();
        await dumpsDone;
        progress.stackHeld = false;
      });
      // A hold that fails (the stack module stopping) must not leave the run waiting.
      await Promise.race([stackHeld, holding]);
      let result;
      try {
        result = await repository.backup({
          host: await opts.host(),
          stack: opts.stackVersions(),
          databases,
          familyDb: opts.familyDb(),
          files: { baseDir: opts.dataDir, paths: [...BACKED_UP_PATHS] },
          onDatabasesDone: release,
          onProgress: (p: BackupProgress) => {
            progress.stage = p.stage;
            progress.bytesDone = p.bytesDone;
            if (p.stage === 'database') {
              progress.database = p.database;
              progress.bytesTotal = progress.percent = progress.etaSeconds = undefined;
            } else {
              progress.database = undefined;
              progress.bytesTotal = p.bytesTotal;
              progress.percent = p.percent;
              progress.etaSeconds = p.etaSeconds;
            }
          },
        });
      } finally {
        release();
        await holding;
      }
      const done = now();
      await updateState((s) => {
        s.targets[target.id] = {
          ...s.targets[target.id],
          lastSuccess: {
            at: done,
            runId: result.set.runId,
            bytesProcessed: result.set.bytesProcessed,
            bytesAdded: result.set.bytesAdded,
            durationMs: result.durationMs,
            filesProcessed: result.set.files?.processed ?? 0,
            warnings: result.warnings.length,
          },
        };
      });
      progress.stage = 'retention';
      await repository.forget(DEFAULT_RETENTION, new Date(done));
      if (withCheck) {
        progress.stage = 'check';
        const checked = await repository.check(CHECK_SUBSETS).then(
          (r) => ({ ok: true, message: undefined as string | undefined, subset: r.subset }),
          (err: unknown) => {
            if (err instanceof BackupError && err.reason !== 'repository-damaged') throw err;
            return { ok: false, message: (err as Error).message, subset: undefined };
          },
        );
        await updateState((s) => {
          s.targets[target.id] = { ...s.targets[target.id], lastCheck: { at: now(), ok: checked.ok, ...(checked.message ? { message: checked.message } : {}) } };
        });
        tlog.info({ ok: checked.ok, subset: checked.subset }, 'integrity check done');
      }
    } catch (err) {
      const failure = failureOf(err);
      tlog.warn({ reason: failure.reason, message: failure.message }, 'backup to this target failed');
      await updateState((s) => {
        s.targets[target.id] = { ...s.targets[target.id], lastFailure: { at: now(), ...failure } };
      });
    } finally {
      if (target.kind === 'usb-drive') await unmountBackupDrive(driveRoots, tlog).catch(() => undefined);
    }
  };

  /** The drill of the first target (the family's main backup); under the caller's hold of the maintenance lock. */
  const drill = async (progress?: RunProgress): Promise<RestoreDrillResult> => {
    const [target] = (await settings()).targets;
    if (!target) throw new Error('No backup target is set up: there is nothing to restore from.');
    if (progress) {
      progress.stage = 'drill';
      progress.target = { id: target.id, label: target.label };
    }
    try {
      const result = await runRestoreDrill(await openTarget(target), {
        throwawayDatabase: opts.throwawayDatabase,
        dataDir: opts.dataDir,
        scratchDir: join(opts.dataDir, 'agent', 'backup-staging', 'restore-drill'),
        sampleSize: opts.drillSampleSize ?? 50,
        log,
      });
      await updateState((s) => {
        s.lastDrill = { at: now(), target: target.id, runId: result.runId, ok: result.ok, problems: result.problems, databases: result.databases.length, filesCompared: result.files.compared };
      });
      (result.ok ? log.info : log.warn).call(log, { target: target.id, ...result }, result.ok ? 'restore drill passed' : 'restore drill failed');
      return result;
    } catch (err) {
      const message = (err as Error).message;
      await updateState((s) => {
        s.lastDrill = { at: now(), target: target.id, runId: '', ok: false, problems: [message], databases: 0, filesCompared: 0 };
      });
      throw err;
    } finally {
      if (target.kind === 'usb-drive') await unmountBackupDrive(driveRoots, log).catch(() => undefined);
    }
  };

  const run = async (trigger: RunTrigger, withCheck: boolean): Promise<void> => {
    const { targets } = await settings();
    const progress: RunProgress = { trigger, startedAt: new Date(now()).toISOString(), targetsDone: 0, targetsTotal: targets.length, stage: 'starting', stackHeld: false };
    running = progress;
    log.info({ trigger, targets: targets.length }, 'backup run starting');
    try {
      for (const target of targets) {
        if (stopped) break;
        await backUpTarget(target, progress, withCheck);
        progress.targetsDone += 1;
      }
      // Weekly, with the check: the first target's newest set is restored and compared.
      if (withCheck && !stopped && targets.length > 0) await drill(progress).catch((err: unknown) => log.warn({ err }, 'the restore drill could not run'));
    } finally {
      running = undefined;
    }
  };

  const startRun = (trigger: RunTrigger, withCheck: boolean, wait: boolean): Promise<void> => {
    const busy = opts.lock.holder();
    if (busy && !wait) throw new MaintenanceBusyError(busy, 'backup');
    return opts.lock.run('backup', () => run(trigger, withCheck), { wait });
  };

  let scheduling: Promise<void> | undefined;
  // One look at the schedule at a time: two ticks must not both find the same run due.
  const runDue = (): Promise<void> => {
    scheduling ??= runDueNow().finally(() => (scheduling = undefined));
    return scheduling;
  };
  const runDueNow = async (): Promise<void> => {
    if (settingsProblem || stopped) return;
    const s = await settings();
    if (s.targets.length === 0) return;
    const st = await state();
    const decision = scheduleDecision(st, s.dailyTime, st.scheduleSince ?? now(), now());
    if (!decision.backupDue) return;
    const startedAt = now();
    // Recorded first: a run that crashes the agent is not retried in a loop at every start.
    await updateState((x) => {
      x.lastScheduledRunAt = startedAt;
      if (decision.checkDue) x.lastCheckAt = startedAt;
    });
    await startRun('schedule', decision.checkDue, true);
  };

  const tick = () => {
    runDue().catch((err: unknown) => log.error({ err }, 'the scheduled backup could not start'));
  };

  const status = async (): Promise<BackupsStatus> => {
    let s: BackupSettings;
    try {
      s = await settings();
    } catch (err) {
      return { dailyTime: '', targets: [], problem: (err as Error).message };
    }
    const st = await state();
    const decision = s.targets.length > 0 ? scheduleDecision(st, s.dailyTime, st.scheduleSince ?? now(), now()) : undefined;
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      dailyTime: s.dailyTime,
      ...(decision ? { nextRunAt: decision.nextBackupAt.toISOString() } : {}),
      targets: s.targets.map((t) => {
        const ts = st.targets[t.id] ?? {};
        return {
          ...publicTarget(t),
          ...(ts.lastSuccess ? { lastSuccess: { ...ts.lastSuccess, at: iso(ts.lastSuccess.at) } } : {}),
          ...(ts.lastFailure ? { lastFailure: { ...ts.lastFailure, at: iso(ts.lastFailure.at) } } : {}),
          ...(ts.lastCheck ? { lastCheck: { ...ts.lastCheck, at: iso(ts.lastCheck.at) } } : {}),
        };
      }),
      ...(running ? { running: { ...running } } : {}),
      ...(st.lastDrill ? { lastDrill: { ...st.lastDrill, at: iso(st.lastDrill.at) } } : {}),
      ...(settingsProblem ? { problem: settingsProblem } : {}),
    };
  };

  const service: Omit<BackupService, 'routes'> = {
    name: 'backups',
    engine,
    passwordFile: engine.passwordFile,
    dataDir: opts.dataDir,
    async start() {
      await engine.start();
      await mkdir(join(opts.dataDir, 'agent', 'backups'), { recursive: true, mode: 0o700 });
      try {
        await settings();
      } catch (err) {
        // A damaged settings file is shown and is a health reason; the agent still starts.
        settingsProblem = (err as Error).message;
        log.error({ reason: settingsProblem }, 'the backup settings cannot be read; no backup runs until they are fixed');
      }
      const begin = () => {
        if (stopped) return;
        timer = setInterval(tick, opts.tickMs ?? 60_000);
        timer.unref();
        firstTick = setTimeout(tick, opts.firstTickDelayMs ?? 5 * 60_000);
        firstTick.unref();
      };
      if (opts.scheduleFrom) void opts.scheduleFrom.then(begin, () => undefined);
      else begin();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      if (firstTick) clearTimeout(firstTick);
      await engine.stop();
      await writes;
    },
    status,
    runNow(trigger) {
      if (settingsProblem) throw new Error(settingsProblem);
      if (settingsCache && settingsCache.targets.length === 0) throw new Error('No backup target is set up: add a USB drive or an off-site backup first.');
      const done = startRun(trigger, false, false);
      done.catch((err: unknown) => log.error({ err }, 'the backup run failed'));
      return { done };
    },
    runDue,
    async addTarget(input) {
      return serialised(async () => {
        const s = await settings();
        const target = targetFromInput(input, s, now());
        const next = { ...s, targets: [...s.targets, target] };
        await writeBackupSettings(opts.dataDir, next);
        settingsCache = next;
        log.info({ target: publicTarget(target) }, 'backup target added');
        return target;
      }).then(async (target) => {
        if ((await state()).scheduleSince === undefined) await updateState((x) => (x.scheduleSince = now()));
        return target;
      });
    },
    async removeTarget(id) {
      const removed = await serialised(async () => {
        const s = await settings();
        if (!s.targets.some((t) => t.id === id)) return false;
        const next = { ...s, targets: s.targets.filter((t) => t.id !== id) };
        await writeBackupSettings(opts.dataDir, next);
        settingsCache = next;
        for (const key of repositories.keys()) if (key.startsWith(`${id} `)) repositories.delete(key);
        return true;
      });
      if (removed) {
        await updateState((x) => {
          delete x.targets[id];
        });
        log.info({ target: id }, 'backup target removed; its repository is left as it is');
      }
      return removed;
    },
    async setDailyTime(time) {
      parseDailyTime(time);
      await serialised(async () => {
        const next = { ...(await settings()), dailyTime: time };
        await writeBackupSettings(opts.dataDir, next);
        settingsCache = next;
      });
    },
    async repository(id) {
      return openTarget(await findTarget(id));
    },
    async restoreItem(targetId, runId, path, into) {
      const folder = checkRestoreFolderName(into);
      const target = await findTarget(targetId);
      return opts.lock.run('restore', async () => {
        const repository = await openTarget(target);
        const directory = join(opts.dataDir, RESTORE_ROOT, folder);
        const exists = await lstat(directory).then(
          () => true,
          (err: unknown) => {
            if (isNotFound(err)) return false;
            throw err;
          },
        );
        if (exists) throw new Error(`${posix.join(RESTORE_ROOT, folder)} already exists; nothing is restored over existing files. Choose another folder name.`);
        await mkdir(join(opts.dataDir, RESTORE_ROOT), { recursive: true, mode: 0o755 });
        // Made here without `recursive`, so a folder made meanwhile is refused, not merged into.
        await mkdir(directory, { mode: 0o755 });
        try {
          const summary = await repository.restoreItem(runId, path, directory);
          // restic counts folders as files; the family counts what they will open.
          const files = (await readdir(directory, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
          log.info({ target: targetId, runId, path, directory, files }, 'item restored');
          return { directory: posix.join(RESTORE_ROOT, folder), files, bytes: summary.bytesRestored };
        } catch (err) {
          // The folder was made for this restore: a failed one leaves nothing half-restored behind.
          await rm(directory, { recursive: true, force: true });
          throw err;
        } finally {
          if (target.kind === 'usb-drive') await unmountBackupDrive(driveRoots, log).catch(() => undefined);
        }
      });
    },
    async reload() {
      await serialised(async () => {
        settingsCache = stateCache = settingsProblem = undefined;
        repositories.clear();
        try {
          await settings();
        } catch (err) {
          settingsProblem = (err as Error).message;
        }
      });
      log.info({ targets: settingsCache?.targets.length ?? 0 }, 'backup settings read again');
    },
    runDrill() {
      return opts.lock.run('restore-drill', () => drill());
    },
    async prepareDrive(disk) {
      // Not while a backup may be writing to the drive.
      await opts.lock.run('restore', () => prepareBackupDrive(disk, log));
    },
    health: {
      name: 'backups',
      async report() {
        if (settingsProblem) {
          return { sections: {}, reasons: [{ source: 'backups', code: 'backup-settings-damaged', message: settingsProblem, action: 'Fix or remove the file the message names.' }] };
        }
        const [s, st] = [await settings(), await state()];
        const reasons = backupHealthReasons(s, st, now());
        const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
        return {
          sections: {
            backups: {
              running: running ? { stage: running.stage, target: running.target?.id } : undefined,
              targets: s.targets.map((t) => ({ id: t.id, kind: t.kind, lastSuccessAt: iso(st.targets[t.id]?.lastSuccess?.at), lastFailure: st.targets[t.id]?.lastFailure?.reason })),
            },
          },
          reasons,
          // For the fleet: alert on time() - memu_backup_last_success_timestamp_seconds.
          metrics: s.targets.map((t) => ({
            name: 'memu_backup_last_success_timestamp_seconds',
            help: 'When the last complete backup set was written to the target (0: never).',
            type: 'gauge' as const,
            labels: { target: t.id, kind: t.kind },
            value: Math.floor((st.targets[t.id]?.lastSuccess?.at ?? 0) / 1000),
          })),
        };
      },
    },
  };
  return { ...service, routes: backupApiRoutes(service) };
}
