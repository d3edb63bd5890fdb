/**
 * Every way a backup or restore fails, as typed errors: each says what is wrong, what to
 * do, and what happened to the data (a failed run records no set; earlier sets stay), so
 * the dashboard can show the sentence as it is and the health model can match the type.
 * classifyResticFailure turns a restic run that failed into one of them, from its exit
 * code, its `exit_error` message and its stderr text.
 */

export type BackupFailureReason =
  | 'restic-missing'
  | 'restic-too-old'
  | 'wrong-password'
  | 'repository-not-found'
  | 'repository-exists'
  | 'repository-unreachable'
  | 'repository-locked'
  | 'target-full'
  | 'repository-damaged'
  | 'dump-failed'
  | 'source-missing'
  | 'restore-failed'
  | 'set-not-found'
  | 'set-incomplete'
  | 'set-damaged'
  | 'item-not-found'
  | 'cancelled'
  | 'restic-failed';

export class BackupError extends Error {
  constructor(
    readonly reason: BackupFailureReason,
    /** What is wrong, in a sentence. */
    readonly problem: string,
    /** What to do about it, in a sentence or two. */
    readonly action: string,
    /** restic's own words, when they say more (the end of its stderr). */
    readonly detail?: string,
  ) {
    super(`${problem} ${action}`);
    this.name = new.target.name;
  }
}

export class ResticMissingError extends BackupError {
  constructor() {
    super('restic-missing', 'restic is not installed, so nothing can be backed up or restored.', "Install Debian's restic package (0.17 or newer).");
  }
}

export class ResticTooOldError extends BackupError {
  constructor(readonly version: string, minimum: string) {
    super(
      'restic-too-old',
      `restic ${version} is too old: backups need restic ${minimum} or newer (for backup --stdin-from-command).`,
      "Install restic from Debian trixie (scripts/setup-host does this on a build host).",
    );
  }
}

export class WrongPasswordError extends BackupError {
  constructor(readonly repository: string, detail?: string) {
    super(
      'wrong-password',
      `The backup repository at ${repository} does not accept this password: it was made with another one.`,
      'Use the password from the recovery kit that belongs to this repository, or choose an empty target for a new repository. Nothing in the repository was changed.',
      detail,
    );
  }
}

export class RepositoryNotFoundError extends BackupError {
  constructor(readonly repository: string, detail?: string) {
    super(
      'repository-not-found',
      `There is no backup repository at ${repository}.`,
      'Check the address, or that the USB drive is plugged in and mounted; a new target must be set up as a repository first.',
      detail,
    );
  }
}

export class RepositoryExistsError extends BackupError {
  constructor(readonly repository: string, detail?: string) {
    super(
      'repository-exists',
      `${repository} already holds a backup repository, made with another password.`,
      "Restore from it with its recovery kit's password, or choose an empty target for this device's backups; it was left as it is.",
      detail,
    );
  }
}

export class RepositoryUnreachableError extends BackupError {
  constructor(
    readonly repository: string,
    readonly lastError: string,
    consequence: string,
  ) {
    super(
      'repository-unreachable',
      `The backup repository at ${repository} cannot be reached (${lastError}).`,
      `${consequence} Check the network, the address and that the backup server is running; the backup is tried again at its next time.`,
    );
  }
}

export class RepositoryLockedError extends BackupError {
  constructor(readonly repository: string, detail: string) {
    super(
      'repository-locked',
      `The backup repository at ${repository} is locked by another restic process.`,
      'Wait for it to finish and try again; a lock left by a process that died is removed automatically.',
      detail,
    );
  }
}

export class TargetFullError extends BackupError {
  constructor(readonly repository: string, consequence: string, detail?: string) {
    super(
      'target-full',
      `The backup target ${repository} is full (no space left on device).`,
      `${consequence} Free space by keeping fewer backups, or use a larger drive.`,
      detail,
    );
  }
}

export class RepositoryDamagedError extends BackupError {
  constructor(
    readonly repository: string,
    readonly brokenPacks: readonly string[],
    readonly errors: readonly string[],
  ) {
    const packs = brokenPacks.length > 0 ? ` Damaged pack files: ${brokenPacks.join(', ')}.` : '';
    super(
      'repository-damaged',
      `The backup repository at ${repository} is damaged: restic's check found ${errors.length || 'some'} error${errors.length === 1 ? '' : 's'}.${packs}`,
      `Backups that use the damaged data may not restore. Keep the target as it is and make a new backup on another target; then repair this one following restic's troubleshooting guide (restic repair packs${brokenPacks.length > 0 ? ` ${brokenPacks.join(' ')}` : ''}, then restic repair snapshots --forget).`,
      errors.join('\n'),
    );
  }
}

export class DumpFailedError extends BackupError {
  constructor(readonly database: string, detail: string) {
    super(
      'dump-failed',
      `The dump of database ${database} failed before it finished.`,
      'This run recorded no backup set; earlier backups are intact. Check that the database is running and the dump command works (its message is below), then back up again.',
      detail,
    );
  }
}

export class SourceMissingError extends BackupError {
  constructor(readonly path: string, why: string) {
    super('source-missing', `${path} cannot be backed up: ${why}.`, 'This run recorded no backup set; earlier backups are intact. Check that the data partition is mounted.');
  }
}

export class RestoreFailedError extends BackupError {
  constructor(readonly what: string, problem: string, detail?: string) {
    super('restore-failed', `Restoring ${what} failed: ${problem}.`, 'Nothing was put in place; the backup itself is unchanged. Fix the cause and restore again.', detail);
  }
}

export class BackupSetNotFoundError extends BackupError {
  constructor(readonly repository: string, readonly runId: string) {
    super('set-not-found', `The backup repository at ${repository} has no backup set ${runId}.`, 'List the sets and choose one of them.');
  }
}

export class BackupSetIncompleteError extends BackupError {
  constructor(readonly repository: string, readonly runId: string) {
    super(
      'set-incomplete',
      `Backup set ${runId} in ${repository} is incomplete: its run stopped before it finished (a power cut or an error).`,
      'Restore from a complete set; incomplete ones are removed when old backups are forgotten.',
    );
  }
}

export class BackupSetDamagedError extends BackupError {
  constructor(readonly repository: string, readonly runId: string, problem: string) {
    super('set-damaged', `Backup set ${runId} in ${repository} is damaged: ${problem}.`, 'Restore from another set, and check the repository.');
  }
}

export class ItemNotFoundError extends BackupError {
  constructor(readonly runId: string, readonly path: string) {
    super('item-not-found', `Backup set ${runId} holds nothing at ${path}.`, 'Choose a path the set holds (relative to the data directory, e.g. photos/library/2024).');
  }
}

export class BackupCancelledError extends BackupError {
  constructor(operation: string, consequence: string) {
    super('cancelled', `restic ${operation} was stopped because the agent is stopping.`, `${consequence} It runs again at its next time.`);
  }
}

export class ResticFailedError extends BackupError {
  constructor(operation: string, how: string, consequence: string, detail?: string) {
    super('restic-failed', `restic ${operation} failed (${how}).`, `${consequence} restic's message is below; if it repeats, check the target and the repository.`, detail);
  }
}

/** How a restic run ended, as far as classifying a failure needs. */
export interface ResticFailure {
  /** What was being done, for the message: `backup of database synapse`, `check`. */
  operation: string;
  /** The repository as shown to people (credentials removed). */
  repository: string;
  /** What the failure means for the family's data, said at the end (`This run recorded no backup set; …`). */
  consequence: string;
  exitCode: number | null;
  signal: string | null;
  stderr: string;
  /** The message of restic's `exit_error` line, when it wrote one. */
  exitMessage?: string;
  /** Why restic could not start, and whether it was because it is not installed. */
  startError?: string;
  notInstalled?: boolean;
  /** Set when the runner stopped restic after it kept retrying a backend that did not answer. */
  gaveUpRetrying?: { afterMs: number; lastError: string };
  /** Set for a backup streamed from a database's dump command. */
  database?: string;
}

/** restic's exit codes (restic 0.17+, doc/075_scripting.rst). */
export const RESTIC_EXIT = {
  ok: 0,
  fatal: 1,
  /** backup: the snapshot was written, but some source files could not be read. */
  incompleteSnapshot: 3,
  repositoryDoesNotExist: 10,
  repositoryLocked: 11,
  wrongPassword: 12,
  interrupted: 130,
} as const;

/** Network failures as Go and restic's backends word them. */
const UNREACHABLE = [
  /connection refused/i,
  /no such host/i,
  /network is unreachable/i,
  /no route to host/i,
  /i\/o timeout/i,
  /connection reset by peer/i,
  /TLS handshake timeout/i,
  /unable to start the sftp session/i,
  /ssh: connect to host/i,
  /Could not resolve hostname/i,
];

const NO_SPACE = /no space left on device|ENOSPC|disk quota exceeded/i;
const DAMAGED = /ciphertext verification failed|repository contains errors|pack [0-9a-f]+ contains \d+ errors|unexpected pack id|invalid data returned|decrypting blob .* failed/i;

/** The last lines of restic's stderr, without its progress noise, for a message's detail. */
export function stderrTail(stderr: string, lines = 12): string {
  return stderr
    .split('\n')
    .map((l) => l.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').trimEnd())
    .filter((l) => l.length > 0)
    .slice(-lines)
    .join('\n');
}

/** The last backend error restic retried, from lines like `Stat(<config/>) returned error, retrying after 2s: <error>`. */
export function lastRetriedError(stderr: string): string | undefined {
  const retries = stderr.split('\n').filter((l) => l.includes('returned error, retrying after'));
  const last = retries.at(-1);
  if (!last) return undefined;
  return last.replace(/^.*returned error, retrying after [^:]+: /, '').trim();
}

/** The typed error for a restic run that failed. Unknown exit codes are failures too. */
export function classifyResticFailure(f: ResticFailure): BackupError {
  const text = `${f.exitMessage ?? ''}\n${f.stderr}`;
  const detail = stderrTail(f.stderr) || f.exitMessage;
  if (f.notInstalled) return new ResticMissingError();
  if (f.startError !== undefined) return new ResticFailedError(f.operation, `it could not start: ${f.startError}`, f.consequence);
  if (f.gaveUpRetrying) return new RepositoryUnreachableError(f.repository, `${f.gaveUpRetrying.lastError}; gave up after ${Math.round(f.gaveUpRetrying.afterMs / 1000)} s of retries`, f.consequence);
  if (f.exitCode === RESTIC_EXIT.wrongPassword || /wrong password or no key found/i.test(text)) return new WrongPasswordError(f.repository, detail);
  if (f.exitCode === RESTIC_EXIT.repositoryDoesNotExist || /repository does not exist/i.test(text)) return new RepositoryNotFoundError(f.repository, detail);
  if (f.exitCode === RESTIC_EXIT.repositoryLocked || /repository is already locked/i.test(text)) return new RepositoryLockedError(f.repository, detail ?? '');
  if (NO_SPACE.test(text)) return new TargetFullError(f.repository, f.consequence, detail);
  if (/config file already exists/i.test(text)) return new RepositoryExistsError(f.repository, detail);
  if (f.database !== undefined && /command failed|subprocess /i.test(text)) return new DumpFailedError(f.database, detail ?? '');
  if (DAMAGED.test(text)) return new RepositoryDamagedError(f.repository, [], detail ? [detail] : []);
  const unreachable = UNREACHABLE.find((re) => re.test(text));
  if (unreachable) {
    const line = text.split('\n').find((l) => unreachable.test(l)) ?? '';
    return new RepositoryUnreachableError(f.repository, line.replace(/^Fatal: /, '').trim().slice(0, 300), f.consequence);
  }
  const how = f.signal !== null ? `stopped by ${f.signal}` : f.exitCode === RESTIC_EXIT.interrupted ? 'interrupted' : `exit ${f.exitCode}`;
  return new ResticFailedError(f.operation, how, f.consequence, detail);
}
