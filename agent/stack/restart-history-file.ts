import type { Logger } from 'pino';
import { z } from 'zod';
import { readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';
import type { RestartHistory } from './restart-backoff.ts';

/**
 * The reconciler's restart history on the data partition, so the loop breaker's count
 * (10 restarts in 30 minutes) survives the agent's restarts and reboots: a service that
 * crashes the agent, or the box, would otherwise get a fresh budget every time.
 */
const restartHistorySchema = z.record(z.object({ restarts: z.array(z.number()), streak: z.number().int().nonnegative() }).strict());

export interface RestartHistoryFile {
  load(): Promise<RestartHistory>;
  /** Writes the history when it differs from what was last loaded or saved. */
  save(history: RestartHistory): Promise<void>;
}

export function restartHistoryFile(path: string, log: Logger): RestartHistoryFile {
  let saved = '{}';
  return {
    async load() {
      try {
        const parsed = restartHistorySchema.safeParse((await readJsonIfPresent(path)) ?? {});
        if (!parsed.success) {
          log.warn({ path }, 'the saved restart history is not valid; starting from none');
          return {};
        }
        saved = JSON.stringify(parsed.data);
        return parsed.data;
      } catch (err) {
        log.warn({ err, path }, 'cannot read the saved restart history; starting from none');
        return {};
      }
    },
    async save(history) {
      const text = JSON.stringify(history);
      if (text === saved) return;
      await writeJsonDurably(path, history, 0o600);
      saved = text;
    },
  };
}
