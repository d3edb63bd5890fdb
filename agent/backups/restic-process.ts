import { pipeline } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { startProcess } from '../../shared/process/run-command.ts';
import { BackupCancelledError, classifyResticFailure, lastRetriedError, RESTIC_EXIT, type BackupError } from './backup-errors.ts';
import { parseResticLine, type ResticJsonCommand, type ResticMessage } from './restic-messages.ts';

/**
 * Runs restic for one repository. Through the shared process runner's startProcess rather
 * than runCommand, for three reasons: a backup's progress arrives as JSON lines on
 * stdout, `restic dump` streams a file to wherever it goes, and restic retries an
 * unreachable backend for many minutes, so a run that keeps retrying must be stoppable.
 *
 * The password reaches restic only as RESTIC_PASSWORD_FILE (never in its arguments,
 * which any process can read), and the parent's own RESTIC_* settings are removed so
 * nothing else can pick the repository or the password.
 */
export interface ResticAccess {
  /** What restic gets as `--repo`: a path, or a `rest:`/`sftp:`/`s3:` URL. */
  location: string;
  /** The location as shown to people: credentials in a URL replaced by `***`. */
  displayLocation: string;
  /** A file holding the repository password (mode 0600). */
  passwordFile: string;
  /** restic's cache, on the data partition (it would otherwise go to $HOME/.cache). */
  cacheDir: string;
  /** Backend settings restic reads from its environment (AWS_ACCESS_KEY_ID, RESTIC_REST_USERNAME…). */
  backendEnv: Readonly<Record<string, string>>;
  /** The restic program (default `restic` on PATH). */
  binary: string;
  /** How long restic may keep retrying a backend that does not answer before it is stopped. */
  unreachableAfterMs: number;
  /** Progress lines per second restic writes while it works. */
  progressFps: number;
  /** `--limit-upload` in KiB/s, for off-site targets behind a home uplink; undefined means no limit. */
  limitUploadKiBPerSecond?: number;
  /** Aborting stops the running restic (SIGTERM, so it removes its lock); the agent's stop() uses it. */
  abortSignal?: AbortSignal;
  log: Logger;
}

export interface ResticRun {
  /** Which parser reads the JSON lines. */
  parse: ResticJsonCommand;
  /** The command and its arguments: `['backup', '--tag', …]`. */
  args: readonly string[];
  /** For messages: `backup of database synapse`. */
  operation: string;
  /** What a failure means for the data, ending the error's message. */
  consequence: string;
  cwd?: string;
  /** Added to restic's environment (and so to a `--stdin-from-command` program's). */
  env?: Readonly<Record<string, string>>;
  /** Where stdout goes instead of being parsed (`dump`). */
  stdoutTo?: Writable;
  /** Keep stdout as text (`snapshots`, `cat`); otherwise only the parsed messages are kept. */
  collectStdout?: boolean;
  /** Called with each message as it arrives (progress). */
  onMessage?: (message: ResticMessage) => void;
  /** Exit codes that are not failures besides 0 (3 for backup: snapshot written, some files unreadable). */
  acceptExitCodes?: readonly number[];
  /** Set for a backup streamed from a database's dump command, so its failure is named after it. */
  database?: string;
}

export interface ResticResult {
  exitCode: number;
  /** Every message but progress, in order. */
  messages: ResticMessage[];
  /** stdout when collectStdout was set. */
  stdout: string;
  /** stderr as people read it: JSON messages turned into their text. */
  stderr: string;
}

const STDERR_LIMIT = 256 * 1024;
const STDOUT_LIMIT = 64 * 1024 * 1024;
/** Once asked to stop, restic removes its lock and exits; after this it is killed. */
const TERMINATE_GRACE_MS = 10_000;

function splitLines(onLine: (line: string) => void): { push(chunk: Buffer): void; end(): void } {
  let partial = '';
  return {
    push(chunk) {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    },
    end() {
      if (partial) onLine(partial);
      partial = '';
    },
  };
}

/** A stderr line as text: restic's JSON error lines say their message, others stay as they are. */
export function humanLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const obj = JSON.parse(line) as { message?: unknown; error?: { message?: unknown }; item?: unknown };
    if (typeof obj.error?.message === 'string') return typeof obj.item === 'string' && obj.item ? `${obj.item}: ${obj.error.message}` : obj.error.message;
    if (typeof obj.message === 'string') return obj.message.trimEnd();
  } catch {
    // Not JSON after all: shown as it is.
  }
  return line;
}

function environment(access: ResticAccess, extra: Readonly<Record<string, string>> | undefined): Record<string, string | undefined> {
  return {
    RESTIC_PASSWORD: undefined,
    RESTIC_PASSWORD_COMMAND: undefined,
    RESTIC_REPOSITORY: undefined,
    RESTIC_REPOSITORY_FILE: undefined,
    RESTIC_KEY_HINT: undefined,
    RESTIC_HOST: undefined,
    ...access.backendEnv,
    ...extra,
    RESTIC_PASSWORD_FILE: access.passwordFile,
    RESTIC_PROGRESS_FPS: String(access.progressFps),
  };
}

function globalArgs(access: ResticAccess): string[] {
  return [
    '--repo',
    access.location,
    '--cache-dir',
    access.cacheDir,
    '--json',
    ...(access.limitUploadKiBPerSecond !== undefined ? ['--limit-upload', String(access.limitUploadKiBPerSecond)] : []),
  ];
}

interface RawOutcome {
  code: number | null;
  signal: string | null;
  startError?: string;
  notInstalled?: boolean;
  gaveUpRetrying?: { afterMs: number; lastError: string };
  aborted?: boolean;
  messages: ResticMessage[];
  stdout: string;
  stderr: string;
}

async function runOnce(access: ResticAccess, run: ResticRun): Promise<RawOutcome> {
  const started = startProcess(access.binary, [...globalArgs(access), ...run.args], {
    env: environment(access, run.env),
    cwd: run.cwd,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  });
  const { child } = started;
  const messages: ResticMessage[] = [];
  let stdout = '';
  let stderr = '';
  let firstRetryAt: number | undefined;
  let lastRetryAt = 0;
  let gaveUpRetrying: RawOutcome['gaveUpRetrying'];

  const stderrLines = splitLines((line) => {
    if (line.includes('returned error, retrying after')) {
      const now = Date.now();
      // A retry long after the previous one starts a new outage.
      if (firstRetryAt === undefined || now - lastRetryAt > 2 * access.unreachableAfterMs) firstRetryAt = now;
      lastRetryAt = now;
    }
    const parsed = parseResticLine(run.parse, line);
    if (parsed && parsed.type !== 'backup-status' && parsed.type !== 'restore-status') messages.push(parsed);
    if (stderr.length < STDERR_LIMIT) stderr += `${humanLine(line)}\n`;
  });
  child.stderr?.on('data', (d: Buffer) => stderrLines.push(d));
  child.stderr?.on('end', () => stderrLines.end());

  let sinkDone: Promise<void> = Promise.resolve();
  if (run.stdoutTo && child.stdout) {
    sinkDone = pipeline(child.stdout, run.stdoutTo);
  } else {
    const stdoutLines = splitLines((line) => {
      if (run.collectStdout && stdout.length < STDOUT_LIMIT) stdout += `${line}\n`;
      const parsed = parseResticLine(run.parse, line);
      if (!parsed) return;
      run.onMessage?.(parsed);
      if (parsed.type !== 'backup-status' && parsed.type !== 'restore-status') messages.push(parsed);
    });
    child.stdout?.on('data', (d: Buffer) => stdoutLines.push(d));
    child.stdout?.on('end', () => stdoutLines.end());
  }

  let killTimer: NodeJS.Timeout | undefined;
  const terminate = () => {
    child.kill('SIGTERM');
    killTimer ??= setTimeout(() => child.kill('SIGKILL'), TERMINATE_GRACE_MS);
  };
  const watch = setInterval(() => {
    if (firstRetryAt === undefined || gaveUpRetrying) return;
    const afterMs = Date.now() - firstRetryAt;
    if (afterMs < access.unreachableAfterMs) return;
    gaveUpRetrying = { afterMs, lastError: lastRetriedError(stderr) ?? 'the backend did not answer' };
    access.log.warn({ repository: access.displayLocation, operation: run.operation, afterMs }, 'restic keeps retrying an unreachable repository; stopping it');
    terminate();
  }, Math.min(1000, Math.max(100, access.unreachableAfterMs / 4)));
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    terminate();
  };
  if (access.abortSignal?.aborted) onAbort();
  access.abortSignal?.addEventListener('abort', onAbort);

  const outcome = await started.ended;
  access.abortSignal?.removeEventListener('abort', onAbort);
  clearInterval(watch);
  clearTimeout(killTimer);
  // A sink that failed (disk full while restoring) is reported by the caller, who owns it.
  const sinkError = await sinkDone.then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  if (sinkError && outcome.code === 0) throw sinkError;
  return {
    code: outcome.code,
    signal: outcome.signal,
    startError: outcome.startError,
    notInstalled: outcome.notInstalled,
    gaveUpRetrying,
    aborted,
    messages,
    stdout,
    stderr: sinkError ? `${stderr}${sinkError.message}\n` : stderr,
  };
}

/**
 * Runs restic and returns what it said; a failure becomes the typed error for it
 * (classifyResticFailure). A repository still locked by a restic that died (a power cut,
 * a kill) is unlocked once — `restic unlock` removes only locks whose process is gone or
 * that are older than 30 minutes — and the command runs again.
 */
export async function runRestic(access: ResticAccess, run: ResticRun): Promise<ResticResult> {
  let raw = await runOnce(access, run);
  if (raw.code === RESTIC_EXIT.repositoryLocked && !run.stdoutTo && !raw.aborted) {
    access.log.info({ repository: access.displayLocation, operation: run.operation }, 'repository locked; removing stale locks and trying again');
    await runOnce(access, { parse: 'other', args: ['unlock'], operation: 'unlock', consequence: run.consequence });
    raw = await runOnce(access, run);
  }
  const accepted = raw.code === 0 || (raw.code !== null && (run.acceptExitCodes ?? []).includes(raw.code));
  if (raw.aborted) throw new BackupCancelledError(run.operation, run.consequence);
  if (accepted && !raw.gaveUpRetrying) return { exitCode: raw.code!, messages: raw.messages, stdout: raw.stdout, stderr: raw.stderr };
  throw failureOf(access, run, raw);
}

/** The typed error for a run that ended as `result` did: for callers that accept an exit code and then decide it was a failure after all. */
export function failureOf(access: ResticAccess, run: ResticRun, result: Pick<RawOutcome, 'messages' | 'stderr'> & Partial<RawOutcome> & { exitCode?: number }): BackupError {
  const exit = [...result.messages].reverse().find((m) => m.type === 'exit-error');
  return classifyResticFailure({
    operation: run.operation,
    repository: access.displayLocation,
    consequence: run.consequence,
    exitCode: result.code ?? result.exitCode ?? null,
    signal: result.signal ?? null,
    stderr: result.stderr,
    exitMessage: exit?.type === 'exit-error' ? exit.message : undefined,
    startError: result.startError,
    notInstalled: result.notInstalled,
    gaveUpRetrying: result.gaveUpRetrying,
    database: run.database,
  });
}
