import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/**
 * Host-side logger: readable lines on a terminal, JSON lines (one object per line)
 * when stderr is not a terminal or `--json` was given, so CI and factory stations can
 * parse them. Logs go to stderr; stdout stays free for command results.
 */
export function createHostLogger(opts: { json?: boolean; level?: string } = {}): Logger {
  const level = opts.level ?? process.env.MEMU_LOG_LEVEL ?? 'info';
  const json = opts.json ?? !process.stderr.isTTY;
  if (json) return pino({ level, base: { app: 'memu' } }, pino.destination({ fd: 2, sync: true }));
  const stream = pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname,app', translateTime: 'HH:MM:ss' });
  return pino({ level, base: { app: 'memu' } }, stream);
}
