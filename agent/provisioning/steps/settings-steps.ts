import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  DEVICE_SETTINGS_FORMAT,
  applyHostname,
  applyTimezone,
  defaultHostname,
  deviceSettingsPaths,
  findWifiInterface,
  readStoredSettings,
  writeAuthorizedKeys,
  writeStoredAuthorizedKeys,
  writeStoredSettings,
  writeStoredWifi,
  writeWifi,
  type StoredDeviceSettings,
} from '../../device-settings/index.ts';
import { fault, type FirstBootContext } from './first-boot-context.ts';
import { readTextIfPresent, removeStaleTemporaryFiles } from '../../../shared/files/durable-files.ts';
import { preseedSettings, writeStepOutcome } from './preseed-record.ts';

/** device-settings: hostname, time zone, locale (+ family name, update channel), stored on the data partition, applied to the root slot. */
export async function deviceSettingsStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const dir = deviceSettingsPaths(ctx.dataDir).dir;
  await removeStaleTemporaryFiles(dir);
  await removeStaleTemporaryFiles(join(ctx.rootDir, 'etc'), { only: ['hostname', 'timezone', 'localtime'] });
  const preseed = await preseedSettings(ctx.dataDir);
  let settings = await readStoredSettings(ctx.dataDir);
  if (!settings) {
    const machineId = await readTextIfPresent(join(ctx.rootDir, 'etc/machine-id'));
    settings = {
      format: DEVICE_SETTINGS_FORMAT,
      // Lower case: the stack's config (MagicDNS, Matrix server name) needs a lowercase DNS label.
      hostname: preseed.hostname?.toLowerCase() ?? defaultHostname(machineId),
      hostnameSource: preseed.hostname ? 'preseed' : 'default',
      timezone: preseed.timezone ?? 'Etc/UTC',
      locale: preseed.locale,
      familyName: preseed.familyName,
      updateChannel: preseed.updateChannel ?? 'stable',
      factoryQa: preseed.factoryQa ?? false,
    } satisfies StoredDeviceSettings;
    await writeStoredSettings(ctx.dataDir, settings);
  }
  await fault(ctx, 'device-settings:after-store');
  await applyHostname(ctx, settings.hostname);
  await fault(ctx, 'device-settings:after-hostname');
  await applyTimezone(ctx, settings.timezone);
  log.info({ hostname: settings.hostname, hostnameSource: settings.hostnameSource, timezone: settings.timezone }, 'device settings applied');
  const fields = (['hostname', 'timezone', 'locale', 'familyName', 'updateChannel', 'factoryQa'] as const).filter((f) => preseed[f] !== undefined);
  await writeStepOutcome(ctx.dataDir, { step: 'device-settings', fields, warnings: [], hostname: settings.hostname, hostnameSource: settings.hostnameSource });
}

/** network: Wi-Fi from the preseed (systemd-networkd + wpa_supplicant), with the key derived at read-preseed; no-op without Wi-Fi. */
export async function networkStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const { wifi } = await preseedSettings(ctx.dataDir);
  if (!wifi) {
    log.info('no Wi-Fi in the first-boot settings; wired network only');
    await writeStepOutcome(ctx.dataDir, { step: 'network', fields: [], warnings: [] });
    return;
  }
  await removeStaleTemporaryFiles(deviceSettingsPaths(ctx.dataDir).dir);
  await removeStaleTemporaryFiles(join(ctx.rootDir, 'etc/systemd/network'), { only: ['70-memu-wifi.network'] });
  await removeStaleTemporaryFiles(join(ctx.rootDir, 'etc/wpa_supplicant'), { only: ['wpa_supplicant-'] });
  await removeStaleTemporaryFiles(join(ctx.rootDir, 'etc/systemd/system/multi-user.target.wants'), { only: ['wpa_supplicant@'] });
  await writeStoredWifi(ctx.dataDir, wifi);
  await fault(ctx, 'network:after-store');
  const wifiInterface = await findWifiInterface(ctx);
  if (await writeWifi(ctx.rootDir, wifiInterface, wifi)) await ctx.reloadNetwork?.(wifiInterface);
  log.info({ wifiInterface, country: wifi.country, open: !wifi.psk }, 'Wi-Fi configured');
  const fields = ['wifi.ssid', 'wifi.country', ...(wifi.psk ? ['wifi.passphrase'] : [])];
  await writeStepOutcome(ctx.dataDir, { step: 'network', fields, warnings: [], wifiInterface });
}

/** ssh-keys: the admin's SSH keys for root (the only login user of the image), 0600; no-op without keys. */
export async function sshKeysStep(ctx: FirstBootContext, log: Logger): Promise<void> {
  const { sshAuthorizedKeys: keys } = await preseedSettings(ctx.dataDir);
  if (!keys || keys.length === 0) {
    log.info('no SSH keys in the first-boot settings; SSH logins stay closed');
    await writeStepOutcome(ctx.dataDir, { step: 'ssh-keys', fields: [], warnings: [] });
    return;
  }
  await removeStaleTemporaryFiles(deviceSettingsPaths(ctx.dataDir).dir);
  await removeStaleTemporaryFiles(join(ctx.rootDir, 'root/.ssh'), { only: ['authorized_keys'] });
  await writeStoredAuthorizedKeys(ctx.dataDir, keys);
  await fault(ctx, 'ssh-keys:after-store');
  await writeAuthorizedKeys(ctx.rootDir, keys);
  log.info({ keys: keys.length }, 'SSH keys installed for root');
  await writeStepOutcome(ctx.dataDir, { step: 'ssh-keys', fields: ['sshAuthorizedKeys'], warnings: [] });
}
