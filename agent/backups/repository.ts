import { isAbsolute } from 'node:path';
import type { Logger } from 'pino';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { RepositoryExistsError, ResticMissingError, ResticTooOldError, WrongPasswordError, ResticFailedError } from './backup-errors.ts';
import { parseVersion, versionAtLeast, type Initialized } from './restic-messages.ts';
import { runRestic, type ResticAccess } from './restic-process.ts';

/**
 * Where backups go. `local` is a directory on a mounted drive (the USB drive case);
 * the others are restic repository URLs, passed through as they are, with whatever
 * credentials their backend reads from the environment (never the command line).
 */
export type BackupTarget =
  | { kind: 'local'; path: string }
  | { kind: 'rest' | 'sftp' | 's3'; url: string; env?: Readonly<Record<string, string>> };

/** What every repository operation needs besides the target (paths on the data partition, tuning). */
export interface BackupEngineOptions {
  /** The repository password file (backupPasswordPath(dataDir) on the device). */
  passwordFile: string;
  /** restic's cache directory. */
  cacheDir: string;
  /** A directory on the data partition, mode 0700, for memu.db's copy and the manifest during a run. */
  stagingDir: string;
  /** Where the integrity check remembers which part of the data it read last. */
  stateDir: string;
  log: Logger;
  /** The restic program; default `restic` on PATH. */
  resticBinary?: string;
  /** How long restic may retry a repository that does not answer (default 2 minutes). */
  unreachableAfterMs?: number;
  /** Progress lines per second (default 1). */
  progressFps?: number;
  limitUploadKiBPerSecond?: number;
  abortSignal?: AbortSignal;
}

/** restic ≥ 0.17: `backup --stdin-from-command` streams a dump and fails the snapshot when the command fails. */
export const MINIMUM_RESTIC_VERSION = '0.17.0';
export const DEFAULT_UNREACHABLE_AFTER_MS = 120_000;

export function repositoryLocation(target: BackupTarget): string {
  if (target.kind === 'local') {
    if (!isAbsolute(target.path)) throw new Error(`a local backup target must be an absolute path, not ${target.path}`);
    return target.path;
  }
  if (!target.url.startsWith(`${target.kind}:`)) throw new Error(`a ${target.kind} backup target's address must start with ${target.kind}: (got ${displayLocation(target.url)})`);
  return target.url;
}

/** The location with any password in it replaced, for messages and logs. */
export function displayLocation(location: string): string {
  return location.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
}

export function resticAccess(target: BackupTarget, opts: BackupEngineOptions): ResticAccess {
  const location = repositoryLocation(target);
  return {
    location,
    displayLocation: displayLocation(location),
    passwordFile: opts.passwordFile,
    cacheDir: opts.cacheDir,
    backendEnv: target.kind === 'local' ? {} : { ...target.env },
    binary: opts.resticBinary ?? 'restic',
    unreachableAfterMs: opts.unreachableAfterMs ?? DEFAULT_UNREACHABLE_AFTER_MS,
    progressFps: opts.progressFps ?? 1,
    limitUploadKiBPerSecond: opts.limitUploadKiBPerSecond,
    abortSignal: opts.abortSignal,
    log: opts.log,
  };
}

/** The installed restic's version; throws when it is missing or older than MINIMUM_RESTIC_VERSION. */
export async function resticVersion(binary = 'restic'): Promise<string> {
  const r = await runCommandOutcome(binary, ['version', '--json']);
  if (r.notInstalled) throw new ResticMissingError();
  const version = parseVersion(r.stdout);
  if (r.code !== 0 || !version) throw new ResticFailedError('version', r.startError ?? `exit ${r.code}`, 'Nothing was backed up.', r.stderr.trim());
  if (!versionAtLeast(version, MINIMUM_RESTIC_VERSION)) throw new ResticTooOldError(version, MINIMUM_RESTIC_VERSION);
  return version;
}

/** The repository's id (from its config): opening it proves the location and the password. */
export async function readRepositoryId(access: ResticAccess): Promise<string> {
  const r = await runRestic(access, { parse: 'other', args: ['cat', 'config'], operation: 'open', consequence: 'Nothing was changed.', collectStdout: true });
  let id: unknown;
  try {
    id = (JSON.parse(r.stdout) as { id?: unknown }).id;
  } catch {
    id = undefined;
  }
  if (typeof id !== 'string') throw new ResticFailedError('cat config', 'it printed no repository id', 'Nothing was changed.', r.stdout.slice(0, 500));
  return id;
}

/**
 * Makes a new repository at the target, or accepts one that is already there and opens
 * with this password (an init interrupted after restic wrote the config, a drive set up
 * before). A repository there with another password is refused and left alone.
 */
export async function initRepository(access: ResticAccess): Promise<{ repositoryId: string; created: boolean }> {
  try {
    const r = await runRestic(access, { parse: 'other', args: ['init'], operation: 'init', consequence: 'No repository was made.' });
    const init = r.messages.find((m): m is Initialized => m.type === 'initialized');
    return { repositoryId: init?.repositoryId ?? (await readRepositoryId(access)), created: true };
  } catch (err) {
    if (!(err instanceof RepositoryExistsError)) throw err;
    try {
      return { repositoryId: await readRepositoryId(access), created: false };
    } catch (openErr) {
      if (openErr instanceof WrongPasswordError) throw err;
      throw openErr;
    }
  }
}
