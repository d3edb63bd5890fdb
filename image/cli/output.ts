import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { CommandOutcome } from './command.ts';

/**
 * How every `memu` command reports, in one place:
 *
 * - `--json`: stdout carries JSON lines, each with a `type`: zero or more `progress`
 *   lines while long work runs, then exactly one `result` line, also for usage errors and
 *   failures: `{"type":"result","command":…,"ok":true,…}` or
 *   `{"type":"result","command":…,"ok":false,"exitCode":N,"error":"…","hint":"…"}`.
 *   Logs go to stderr as JSON lines.
 * - otherwise: stdout carries the result in words (a sentence or a table); logs and
 *   progress go to stderr (readable on a terminal, JSON lines when stderr is not one),
 *   and an error is printed there once.
 */
export function printOutcome(command: string, outcome: CommandOutcome, json: boolean): void {
  if (json) writeResultLine({ command, ok: outcome.exitCode === ExitCode.ok, ...(outcome.exitCode !== ExitCode.ok ? { exitCode: outcome.exitCode } : {}), ...outcome.result });
  else if (outcome.summary) process.stdout.write(outcome.summary.endsWith('\n') ? outcome.summary : `${outcome.summary}\n`);
}

/** Reports a failure once, in the form the mode asks for, and returns its exit code. */
export function reportFailure(command: string | undefined, err: unknown, ctx: { log: Logger; json: boolean; readableLogs: boolean }): ExitCode {
  const known = err instanceof MemuError;
  const exitCode = known ? err.exitCode : ExitCode.failure;
  const message = known ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`;
  const hint = known ? err.hint : 'this is a bug in memu: run again with --log-level debug and report the output';
  if (ctx.json) writeResultLine({ command, ok: false, exitCode, error: message, ...(hint ? { hint } : {}) });
  if (!known) ctx.log.debug({ err }, 'internal error');
  if (ctx.readableLogs && !ctx.json) process.stderr.write(`error: ${message}${hint ? `\n  hint: ${hint}` : ''}\n`);
  else ctx.log.error({ exitCode, ...(hint ? { hint } : {}) }, message);
  return exitCode;
}

function writeResultLine(fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ type: 'result', ...fields })}\n`);
}
