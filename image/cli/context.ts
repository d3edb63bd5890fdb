import { createHostLogger, type Logger } from '../host/log.ts';
import { createProgress, type Progress } from '../host/progress.ts';

/** What every command gets: a logger and a progress display honouring the global flags. */
export interface CliContext {
  log: Logger;
  progress: Progress;
  json: boolean;
}

export function createCliContext(opts: { json?: boolean; logLevel?: string }): CliContext {
  const json = opts.json ?? false;
  const log = createHostLogger({ json: json || undefined, level: opts.logLevel });
  return { log, progress: createProgress(log, { tty: json ? false : undefined }), json };
}
