import { join } from 'node:path';
import { z } from 'zod';
import { describeInvalid } from '../../shared/errors.ts';
import { readJsonIfPresent, writeFileDurably } from '../../shared/files/durable-files.ts';

/**
 * What the backup service remembers between runs and restarts: when the schedule last
 * ran, and per target its last success, last failure and last integrity check. Kept on
 * the data partition (0600, written durably); a lost file costs only the dashboard's
 * history and one early run, since the sets themselves are in the repositories.
 */

export const BACKUP_STATE_FORMAT = 'memu-backup-state/1';

const outcome = z.object({ at: z.number(), reason: z.string(), message: z.string() }).strict();
const targetState = z
  .object({
    lastSuccess: z
      .object({
        at: z.number(),
        runId: z.string(),
        bytesProcessed: z.number(),
        bytesAdded: z.number(),
        durationMs: z.number(),
        filesProcessed: z.number(),
        warnings: z.number(),
      })
      .strict()
      .optional(),
    lastFailure: outcome.optional(),
    lastCheck: z.object({ at: z.number(), ok: z.boolean(), message: z.string().optional() }).strict().optional(),
  })
  .strict();

const stateSchema = z
  .object({
    format: z.literal(BACKUP_STATE_FORMAT),
    /** When the schedule started counting (the first target added); the first run is the next daily time after it. */
    scheduleSince: z.number().optional(),
    lastScheduledRunAt: z.number().optional(),
    lastCheckAt: z.number().optional(),
    /** The last restore drill: which target and set, and what went wrong. */
    lastDrill: z
      .object({ at: z.number(), target: z.string(), runId: z.string(), ok: z.boolean(), problems: z.array(z.string()), databases: z.number(), filesCompared: z.number() })
      .strict()
      .optional(),
    targets: z.record(z.string(), targetState),
  })
  .strict();

export type BackupState = z.infer<typeof stateSchema>;
export type TargetState = z.infer<typeof targetState>;

export function backupStatePath(dataDir: string): string {
  return join(dataDir, 'agent', 'backups', 'backup-state.json');
}

export async function readBackupState(dataDir: string): Promise<BackupState> {
  const path = backupStatePath(dataDir);
  const raw = await readJsonIfPresent(path).catch(() => undefined);
  if (raw === undefined) return { format: BACKUP_STATE_FORMAT, targets: {} };
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${describeInvalid(path, parsed.error.issues)}\nRemove it: the next backup runs soon and writes it again.`);
  return parsed.data;
}

export async function writeBackupState(dataDir: string, state: BackupState): Promise<void> {
  await writeFileDurably(backupStatePath(dataDir), `${JSON.stringify(state, null, 2)}\n`, 0o600);
}
