import { execa, type Options, type ResultPromise } from 'execa';

/**
 * The one way both programs run other programs, through execa: arguments are never
 * parsed by a shell, a program that is not installed is reported as such, and output is
 * collected whole (or streamed, for pipes and daemons).
 */
export interface RunOptions {
  input?: string | Buffer;
  /** Added to this process's environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Called with each complete line the program writes to stderr (progress, debug logs). */
  onStderrLine?: (line: string) => void;
  /** Stop the program once it has written more than this to stdout; the outcome says `truncated`. */
  maxStdoutBytes?: number;
}

export interface CommandOutcome {
  /** Exit code; null when the program could not start or was killed by a signal. */
  code: number | null;
  signal: string | null;
  stdout: string;
  /** stdout as bytes, for programs whose output is data (mtype, dd). */
  stdoutBytes: Buffer;
  stderr: string;
  /** Why the program could not start (e.g. not installed), if that happened. */
  startError?: string;
  /** Set when the program was not installed (ENOENT on start). */
  notInstalled?: boolean;
  /** stdout passed maxStdoutBytes and the program was stopped. */
  truncated: boolean;
}

/** A program that failed: names it and quotes the end of its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly outcome: CommandOutcome,
  ) {
    super(describeFailure(command, outcome));
    this.name = 'CommandError';
  }
}

function describeFailure(command: string, r: CommandOutcome): string {
  if (r.startError !== undefined) return `cannot run ${command}: ${r.startError}`;
  const tail = r.stderr.trim().split('\n').slice(-15).join('\n');
  return `${command} failed (${r.signal ?? `exit ${r.code}`})${tail ? `:\n${tail}` : ''}`;
}

/**
 * Runs a program and reports how it ended, never rejecting: for callers to whom a
 * failing tool is an answer (probes, best-effort cache drops), not an error.
 */
export async function runCommandOutcome(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandOutcome> {
  const child = execa(cmd, args, {
    reject: false,
    encoding: 'buffer',
    stripFinalNewline: false,
    env: opts.env,
    cwd: opts.cwd,
    // A program that exits without reading its input is not an error of ours.
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: 'ignore' as const }),
    ...(opts.maxStdoutBytes !== undefined ? { maxBuffer: { stdout: opts.maxStdoutBytes } } : { maxBuffer: 256 * 1024 * 1024 }),
  });
  if (opts.onStderrLine) forEachLine(child, opts.onStderrLine);
  const r = await child;
  const stdoutBytes = Buffer.from(r.stdout ?? new Uint8Array());
  const stderr = Buffer.from(r.stderr ?? new Uint8Array()).toString('utf8');
  const started = r.exitCode !== undefined || r.signal !== undefined || r.isMaxBuffer;
  const outcome: CommandOutcome = {
    code: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: stdoutBytes.toString('utf8'),
    stdoutBytes,
    stderr,
    truncated: r.isMaxBuffer,
  };
  if (!started) {
    outcome.startError = r.originalMessage || r.shortMessage;
    if (r.code === 'ENOENT') outcome.notInstalled = true;
  }
  return outcome;
}

/**
 * Runs a program and returns its output; a non-zero exit (or a program that cannot
 * start) becomes a CommandError that names the program and quotes the end of its stderr.
 */
export async function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandOutcome> {
  const r = await runCommandOutcome(cmd, args, opts);
  if (r.code !== 0) throw new CommandError(`${cmd} ${args.slice(0, 3).join(' ')}…`, r);
  return r;
}

export type OutputTarget = 'pipe' | 'ignore' | { appendTo: string };

const outputOption = (t: OutputTarget) => (typeof t === 'string' ? t : { file: t.appendTo, append: true });

export interface StartOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** What the program reads: a pipe the caller writes to, or nothing. */
  stdin?: 'pipe' | 'ignore';
  /** What happens to its output: a pipe the caller reads, ignored, or appended to a log file. */
  stdout?: OutputTarget;
  stderr?: OutputTarget;
}

export interface StartedProcess {
  /** The running program (a ChildProcess): its stdin/stdout are streams when piped. */
  child: ResultPromise;
  /** Resolves when it has ended, however it ended (never rejects); stderr is collected when piped. */
  ended: Promise<CommandOutcome>;
}

/** Starts a long-running or streaming program (a decompressor feeding the flasher, dockerd, QEMU). */
export function startProcess(cmd: string, args: readonly string[], opts: StartOptions = {}): StartedProcess {
  const options: Options = {
    reject: false,
    // Output is the caller's to read (or goes to a file); nothing is held in memory here.
    buffer: false,
    encoding: 'buffer',
    env: opts.env,
    cwd: opts.cwd,
    stdin: opts.stdin ?? 'ignore',
    stdout: outputOption(opts.stdout ?? 'pipe'),
    stderr: outputOption(opts.stderr ?? 'pipe'),
  };
  const child = execa(cmd, args, options);
  // A program that stops reading early (a mismatch found, disk full) must not crash us with EPIPE.
  child.stdin?.on('error', () => {});
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 64 * 1024) stderr += d.toString('utf8');
  });
  const ended = child.then((r) => {
    const started = r.exitCode !== undefined || r.signal !== undefined;
    const outcome: CommandOutcome = { code: r.exitCode ?? null, signal: r.signal ?? null, stdout: '', stdoutBytes: Buffer.alloc(0), stderr, truncated: false };
    if (!started) {
      outcome.startError = r.originalMessage || r.shortMessage;
      if (r.code === 'ENOENT') outcome.notInstalled = true;
    }
    return outcome;
  });
  return { child, ended };
}

function forEachLine(child: ResultPromise, onLine: (line: string) => void): void {
  let partial = '';
  child.stderr?.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine(l);
  });
}
