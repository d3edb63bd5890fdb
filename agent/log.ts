import pino, { type Logger } from 'pino';

/** JSON lines on stdout: journald keeps them, `journalctl -u memu-agent -o cat | jq` reads them. */
export function createAgentLogger(level = process.env.MEMU_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { app: 'memu-agent' } }, pino.destination({ fd: 1, sync: true }));
}
