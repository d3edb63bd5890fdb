import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ensureDirectory } from '../../shared/files/durable-files.ts';
import type { AgentModule } from '../module.ts';
import { backupPasswordPath, ensureBackupPassword } from './backup-password.ts';
import { initBackupRepository, openBackupRepository, type BackupRepository } from './backup-repository.ts';
import { resticVersion, type BackupEngineOptions, type BackupTarget } from './repository.ts';

export interface BackupModuleOptions {
  /** Mount point of the data partition. */
  dataDir: string;
  resticBinary?: string;
  unreachableAfterMs?: number;
  limitUploadKiBPerSecond?: number;
}

export interface BackupModule extends AgentModule {
  /** Opens a target's existing repository. */
  open(target: BackupTarget): Promise<BackupRepository>;
  /** Opens another device's repository with the password in `passwordFile` (a recovery kit's, typed on a new box). */
  openWithPassword(target: BackupTarget, passwordFile: string): Promise<BackupRepository>;
  /** Makes a repository at a new target (or takes the one there made with this device's password). */
  init(target: BackupTarget): Promise<{ repository: BackupRepository; created: boolean }>;
  /** The password file: the recovery kit shows its content. */
  readonly passwordFile: string;
}

/** Where the engine keeps its things on the data partition. */
export function backupPaths(dataDir: string) {
  return {
    passwordFile: backupPasswordPath(dataDir),
    cacheDir: join(dataDir, 'cache', 'restic'),
    stagingDir: join(dataDir, 'agent', 'backup-staging'),
    stateDir: join(dataDir, 'agent', 'backups'),
  };
}

/**
 * The backup engine as an agent module. start() makes the repository password if the
 * device has none and clears what a stopped run left in the staging directory; stop()
 * stops a running restic (SIGTERM, so it removes its lock; the run's set stays
 * incomplete and is removed later) and waits for it.
 */
export function createBackupModule(opts: BackupModuleOptions, log: Logger): BackupModule {
  const paths = backupPaths(opts.dataDir);
  const abort = new AbortController();
  const opened = new Set<BackupRepository>();
  const engine: BackupEngineOptions = {
    ...paths,
    log,
    resticBinary: opts.resticBinary,
    unreachableAfterMs: opts.unreachableAfterMs,
    limitUploadKiBPerSecond: opts.limitUploadKiBPerSecond,
    abortSignal: abort.signal,
  };
  const track = (repository: BackupRepository) => {
    opened.add(repository);
    return repository;
  };
  return {
    name: 'backups',
    passwordFile: paths.passwordFile,
    async start() {
      const { created } = await ensureBackupPassword(paths.passwordFile);
      if (created) log.info({ path: paths.passwordFile }, 'backup repository password generated');
      await ensureDirectory(paths.stagingDir, 0o700);
      await rm(join(paths.stagingDir, 'memu-backup-set'), { recursive: true, force: true });
      // Only for the log: a run asks restic's version again when it opens a repository. Not
      // awaited, so the agent's later modules do not wait for a fork of restic at start; a
      // box without restic still starts, and its backups fail with this reason.
      void resticVersion(opts.resticBinary).then(
        (version) => log.info({ version }, 'restic ready'),
        (err: unknown) => log.warn({ reason: (err as Error).message }, 'backups are unavailable'),
      );
    },
    async stop() {
      abort.abort();
      await Promise.all([...opened].map((r) => r.idle()));
    },
    async open(target) {
      return track(await openBackupRepository(target, engine));
    },
    async openWithPassword(target, passwordFile) {
      return track(await openBackupRepository(target, { ...engine, passwordFile }));
    },
    async init(target) {
      const result = await initBackupRepository(target, engine);
      track(result.repository);
      return result;
    },
  };
}
