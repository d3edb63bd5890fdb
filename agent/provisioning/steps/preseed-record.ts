import { join } from 'node:path';
import { z } from 'zod';
import { validatePreseed, type Preseed } from '../../../shared/contracts/preseed.ts';
import { firstBootPaths } from './first-boot-context.ts';
import { readJsonIfPresent, writeJsonDurably } from '../../../shared/files/durable-files.ts';

/**
 * The ext4 copy of the first-boot settings, `<dataDir>/agent/preseed.json` (0600: it
 * holds the secrets until they are consumed). After the read-preseed step it is the
 * only source the later steps read; the FAT copy is scrubbed.
 */
export const PRESEED_RECORD_FORMAT = 'memu-preseed-record/1';

export type PreseedRecord =
  | { format: typeof PRESEED_RECORD_FORMAT; mode: 'preseed'; source: string; settings: Preseed }
  /** No usable preseed: the setup wizard asks for everything. `reason` never quotes a value. */
  | { format: typeof PRESEED_RECORD_FORMAT; mode: 'wizard'; reason: string; problems: string[] };

const recordSchema = z.discriminatedUnion('mode', [
  z.object({ format: z.literal(PRESEED_RECORD_FORMAT), mode: z.literal('preseed'), source: z.string(), settings: z.unknown() }),
  z.object({ format: z.literal(PRESEED_RECORD_FORMAT), mode: z.literal('wizard'), reason: z.string(), problems: z.array(z.string()) }),
]);

/** The stored record, or undefined when there is none (or it is unusable: read-preseed then redoes it). */
export async function readPreseedRecord(dataDir: string): Promise<PreseedRecord | undefined> {
  let raw: unknown;
  try {
    raw = await readJsonIfPresent(firstBootPaths(dataDir).preseedRecord);
  } catch {
    return undefined; // not JSON: never happens with atomic writes, but never trust garbage
  }
  const parsed = recordSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  if (parsed.data.mode === 'wizard') return parsed.data;
  const settings = validatePreseed(parsed.data.settings);
  if (!settings.ok) return undefined;
  return { format: PRESEED_RECORD_FORMAT, mode: 'preseed', source: parsed.data.source, settings: settings.settings };
}

export async function writePreseedRecord(dataDir: string, record: PreseedRecord): Promise<void> {
  await writeJsonDurably(firstBootPaths(dataDir).preseedRecord, record, 0o600);
}

/** The settings to apply; empty in wizard mode, so every settings step becomes a no-op for absent fields. */
export async function preseedSettings(dataDir: string): Promise<Partial<Preseed>> {
  const record = await readPreseedRecord(dataDir);
  return record?.mode === 'preseed' ? record.settings : {};
}

/** What one step applied, for provisioningSummary(): field names and warnings, never values. */
export interface StepOutcome {
  step: string;
  fields: string[];
  warnings: string[];
  [extra: string]: unknown;
}

export async function writeStepOutcome(dataDir: string, outcome: StepOutcome): Promise<void> {
  await writeJsonDurably(join(firstBootPaths(dataDir).outcomesDir, `${outcome.step}.json`), outcome, 0o644);
}

export async function readStepOutcome(dataDir: string, step: string): Promise<StepOutcome | undefined> {
  try {
    return (await readJsonIfPresent(join(firstBootPaths(dataDir).outcomesDir, `${step}.json`))) as StepOutcome | undefined;
  } catch {
    return undefined;
  }
}
