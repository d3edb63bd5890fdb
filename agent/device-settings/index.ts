/** The family's device settings: kept on the data partition, applied to whichever root slot runs. */
export {
  DEVICE_SETTINGS_FORMAT,
  defaultHostname,
  deviceSettingsPaths,
  readStoredSettings,
  storedWifiSchema,
  writeStoredAuthorizedKeys,
  writeStoredSettings,
  writeStoredWifi,
  readStoredWifi,
  wpaPskFromPassphrase,
} from './device-settings.ts';
export type { StoredDeviceSettings, StoredWifi } from './device-settings.ts';
export {
  applyHostname,
  applyStoredDeviceSettings,
  applyTimezone,
  deviceRootEffects,
  findWifiInterface,
  writeAuthorizedKeys,
  writeHostname,
  writeWifi,
} from './apply-to-root.ts';
export type { RootEffects } from './apply-to-root.ts';
