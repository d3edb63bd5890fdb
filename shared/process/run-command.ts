import { spawn } from 'node:child_process';

export interface RunResult {
  stdout: string;
  stderr: string;
}

export interface CommandOutcome extends RunResult {
  /** Exit code; null when the program could not start or was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the program could not start (e.g. not installed), if that happened. */
  startError?: string;
}

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  onStderrLine?: (line: string) => void;
}

/**
 * Runs a program and reports how it ended, never rejecting: for callers to whom a
 * failing tool is an answer (probes, best-effort cache drops), not an error.
 */
export function runCommandOutcome(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let partial = '';
    let startError: string | undefined;
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      err.push(d);
      if (opts.onStderrLine) {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) opts.onStderrLine(l);
      }
    });
    // A program that exits without reading its input must not crash us with EPIPE.
    child.stdin.on('error', () => {});
    child.on('error', (e) => (startError = e.message));
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ...(startError ? { startError } : {}) }),
    );
    child.stdin.end(opts.input);
  });
}

/**
 * Runs a host program and returns its output; a non-zero exit becomes an error that
 * names the program and quotes the end of its stderr.
 */
export async function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runCommandOutcome(cmd, args, opts);
  if (r.startError) throw new Error(`cannot run ${cmd}: ${r.startError}`);
  if (r.code === 0) return { stdout: r.stdout, stderr: r.stderr };
  const tail = r.stderr.trim().split('\n').slice(-15).join('\n');
  throw new Error(`${cmd} ${args.slice(0, 3).join(' ')}… failed (${r.signal ?? `exit ${r.code}`}):\n${tail}`);
}
