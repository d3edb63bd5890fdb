import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { readJsonIfPresent, readTextIfPresent, writeFileDurably, writeJsonDurably } from '../../shared/files/durable-files.ts';

/**
 * The device's own settings, kept on the ext4 data partition under
 * `<dataDir>/device-settings/` because a root slot is replaced by every OS update (A/B):
 * whatever lives only in /etc of the running slot would be lost on the next update.
 * Provisioning (and later the wizard and dashboard) write them here; every boot
 * re-applies them to the running root slot (apply-to-root.ts).
 *
 *   settings.json     hostname, timezone, locale, family name, update channel   0644
 *   wifi.json         SSID, country and the WPA key derived from the passphrase  0600
 *   authorized_keys   the admin's SSH public keys (root's)                       0600
 */
export const DEVICE_SETTINGS_FORMAT = 'memu-device-settings/1';

export const storedSettingsSchema = z.object({
  format: z.literal(DEVICE_SETTINGS_FORMAT),
  hostname: z.string(),
  /** 'default' = memu-XXXX made from the machine id, because none was preseeded. */
  hostnameSource: z.enum(['preseed', 'default', 'wizard']),
  timezone: z.string(),
  /** The family's language/format choice for the UI; the OS itself stays C.UTF-8 (no `locales` package in the image). */
  locale: z.string().optional(),
  familyName: z.string().optional(),
  updateChannel: z.enum(['stable', 'beta', 'dev']),
  factoryQa: z.boolean(),
});
export type StoredDeviceSettings = z.infer<typeof storedSettingsSchema>;

export const storedWifiSchema = z.object({
  ssid: z.string(),
  country: z.string(),
  /** 64 hex digits (WPA-PSK key, as wpa_passphrase makes it); absent for an open network. */
  psk: z.string().regex(/^[0-9a-f]{64}$/).optional(),
});
export type StoredWifi = z.infer<typeof storedWifiSchema>;

export function deviceSettingsPaths(dataDir: string) {
  const dir = join(dataDir, 'device-settings');
  return { dir, settings: join(dir, 'settings.json'), wifi: join(dir, 'wifi.json'), authorizedKeys: join(dir, 'authorized_keys') };
}

export async function readStoredSettings(dataDir: string): Promise<StoredDeviceSettings | undefined> {
  const parsed = storedSettingsSchema.safeParse(await readJsonIfPresent(deviceSettingsPaths(dataDir).settings).catch(() => undefined));
  return parsed.success ? parsed.data : undefined;
}

export async function writeStoredSettings(dataDir: string, settings: StoredDeviceSettings): Promise<void> {
  await writeJsonDurably(deviceSettingsPaths(dataDir).settings, settings, 0o644);
}

export async function readStoredWifi(dataDir: string): Promise<StoredWifi | undefined> {
  const parsed = storedWifiSchema.safeParse(await readJsonIfPresent(deviceSettingsPaths(dataDir).wifi).catch(() => undefined));
  return parsed.success ? parsed.data : undefined;
}

export async function writeStoredWifi(dataDir: string, wifi: StoredWifi): Promise<void> {
  await writeJsonDurably(deviceSettingsPaths(dataDir).wifi, wifi, 0o600);
}

export async function readStoredAuthorizedKeys(dataDir: string): Promise<string[] | undefined> {
  const text = await readTextIfPresent(deviceSettingsPaths(dataDir).authorizedKeys);
  return text?.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
}

export async function writeStoredAuthorizedKeys(dataDir: string, keys: readonly string[]): Promise<void> {
  await writeFileDurably(deviceSettingsPaths(dataDir).authorizedKeys, authorizedKeysText(keys), 0o600);
}

export function authorizedKeysText(keys: readonly string[]): string {
  return `# Managed by memu-agent from the data partition (device-settings/authorized_keys); edits here are replaced at boot.\n${keys.map((k) => `${k.trim()}\n`).join('')}`;
}

/**
 * The default hostname, `memu-` + 4 hex digits. Derived from a hash of the machine id
 * (systemd asks apps not to expose the id itself) and stored once on the data
 * partition, since a new root slot starts with a new machine id.
 */
export function defaultHostname(machineId: string | undefined): string {
  const id = machineId?.trim() || randomBytes(16).toString('hex');
  return `memu-${createHash('sha256').update(`memu-hostname:${id}`).digest('hex').slice(0, 4)}`;
}

/** The WPA-PSK key for a passphrase (PBKDF2-HMAC-SHA1, SSID salt, 4096 rounds: IEEE 802.11i, as wpa_passphrase). */
export function wpaPskFromPassphrase(passphrase: string, ssid: string): string {
  if (/^[0-9a-fA-F]{64}$/.test(passphrase)) return passphrase.toLowerCase();
  return pbkdf2Sync(Buffer.from(passphrase, 'utf8'), Buffer.from(ssid, 'utf8'), 4096, 32, 'sha1').toString('hex');
}
