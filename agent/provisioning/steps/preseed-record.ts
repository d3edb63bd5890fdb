import { join } from 'node:path';
import { z } from 'zod';
import { preseedSchema, presentPreseedFields, type Preseed } from '../../../shared/contracts/preseed.ts';
import { describeInvalid } from '../../../shared/errors.ts';
import { hashClaimCode } from '../../claim-code/index.ts';
import { storedWifiSchema, wpaPskFromPassphrase } from '../../device-settings/index.ts';
import { firstBootPaths } from './first-boot-context.ts';
import { readJsonIfPresent, readTextIfPresent, writeJsonDurably } from '../../../shared/files/durable-files.ts';

/**
 * The ext4 record of the first-boot settings, `<dataDir>/agent/preseed.json` (0600),
 * written once by read-preseed; after it the only source the later steps read (the
 * FAT copy is scrubbed). It holds what those steps need in the form they consume it and
 * never a secret as given: the Wi-Fi key derived from the passphrase, a salted hash of
 * the claim code. The Tailscale auth key and the agent API key's digest are kept in
 * `secrets/` instead (preseed-secrets.ts).
 */
export const PRESEED_RECORD_FORMAT = 'memu-preseed-record/2';

/** The preseed's settings as stored: the secrets replaced by what consumes them. */
export const storedPreseedSchema = preseedSchema
  .omit({ version: true, wifi: true, tailscaleAuthKey: true, claimCode: true, agentApiKey: true, scrubbedSecrets: true })
  .extend({
    wifi: storedWifiSchema.strict().optional(),
    /** hashClaimCode() of the preseeded claim code (agent/claim-code). */
    claimCodeHash: z.string().optional(),
  })
  .strict();
export type StoredPreseed = z.infer<typeof storedPreseedSchema>;

const recordSchema = z.discriminatedUnion('mode', [
  z
    .object({
      format: z.literal(PRESEED_RECORD_FORMAT),
      mode: z.literal('preseed'),
      source: z.string(),
      /** The preseed fields that were given, secrets by name only (presentPreseedFields). */
      fields: z.array(z.string()),
      settings: storedPreseedSchema,
    })
    .strict(),
  /** No usable preseed: the setup wizard asks for everything. `reason` never quotes a value. */
  z.object({ format: z.literal(PRESEED_RECORD_FORMAT), mode: z.literal('wizard'), reason: z.string(), problems: z.array(z.string()) }).strict(),
]);
export type PreseedRecord = z.infer<typeof recordSchema>;

/** The record for a valid preseed: secrets turned into what consumes them, or left out. */
export async function preseedRecordFrom(source: string, preseed: Preseed): Promise<PreseedRecord> {
  // The Tailscale key and the API key go to secrets/ (storePreseedSecrets); version and scrubbedSecrets describe the FAT file.
  const { version: _version, wifi, tailscaleAuthKey: _tailscaleAuthKey, claimCode, agentApiKey: _agentApiKey, scrubbedSecrets: _scrubbed, ...plain } = preseed;
  const settings: StoredPreseed = { ...plain };
  if (wifi) settings.wifi = { ssid: wifi.ssid, country: wifi.country, ...(wifi.passphrase ? { psk: wpaPskFromPassphrase(wifi.passphrase, wifi.ssid) } : {}) };
  if (claimCode) settings.claimCodeHash = await hashClaimCode(claimCode);
  return { format: PRESEED_RECORD_FORMAT, mode: 'preseed', source, fields: presentPreseedFields(preseed), settings };
}

/**
 * The stored record, or undefined when there is none. A record this agent cannot read
 * is an error naming the file, never a reason to read the FAT again: by then the FAT
 * copy may be scrubbed, and re-reading it would silently drop the secrets it held.
 */
export async function readPreseedRecord(dataDir: string): Promise<PreseedRecord | undefined> {
  const path = firstBootPaths(dataDir).preseedRecord;
  const text = await readTextIfPresent(path);
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON`);
  }
  const format = typeof raw === 'object' && raw !== null ? (raw as { format?: unknown }).format : undefined;
  if (format !== PRESEED_RECORD_FORMAT) {
    throw new Error(`${path} has the format ${JSON.stringify(format ?? null)}; this agent reads only ${PRESEED_RECORD_FORMAT}`);
  }
  const parsed = recordSchema.safeParse(raw);
  if (!parsed.success) throw new Error(describeInvalid(path, parsed.error.issues));
  return parsed.data;
}

export async function writePreseedRecord(dataDir: string, record: PreseedRecord): Promise<void> {
  await writeJsonDurably(firstBootPaths(dataDir).preseedRecord, record, 0o600);
}

/** The settings to apply; empty in wizard mode, so every settings step becomes a no-op for absent fields. */
export async function preseedSettings(dataDir: string): Promise<StoredPreseed> {
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
