import type { Command } from 'commander';
import type { ExitCode } from '../host/errors.ts';
import { createJsonLinesProgress } from '../host/json-progress.ts';
import { createHostLogger, type Logger } from '../host/log.ts';
import { createProgress, type Progress } from '../host/progress.ts';

/**
 * What a `memu` subcommand is, shared by main.ts and every module in commands/:
 * it registers itself on the program and runs its action through `run`, which hands it
 * a context and prints what the action returns (see output.ts for the rules).
 */
export type RegisterCommand = (program: Command, run: (action: (ctx: CliContext) => Promise<CommandOutcome>) => Promise<void>) => void;

/** What every command gets: a logger and a progress display honouring the global flags. */
export interface CliContext {
  log: Logger;
  progress: Progress;
  /** `--json`: results and progress as JSON lines on stdout, logs as JSON lines on stderr. */
  json: boolean;
}

/** What a command's action returns: its exit code, its result as data, and that result in words. */
export interface CommandOutcome {
  exitCode: ExitCode;
  result: Record<string, unknown>;
  /** For a person at a terminal: a sentence or a table (lines), printed instead of the JSON. */
  summary: string;
}

export function createCliContext(opts: { json?: boolean; logLevel?: string }): CliContext {
  const json = opts.json ?? false;
  const log = createHostLogger({ json: json || undefined, level: opts.logLevel });
  const progress = json ? createJsonLinesProgress((line) => process.stdout.write(line)) : createProgress(log);
  return { log, progress, json };
}
