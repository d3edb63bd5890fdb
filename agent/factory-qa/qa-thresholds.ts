import type { HardwareProfile } from '../../hardware/index.ts';

/**
 * Everything the QA checks hold a unit against: the profile's `qa` block (each profile
 * states its own numbers, with their units: hardware/profile.ts), whether it has Wi-Fi,
 * and, on a Raspberry Pi, the bootloader its firmware settings need.
 */
export type QaThresholds = HardwareProfile['qa'] & {
  wifiRequired: boolean;
  /** Raspberry Pi targets: the bootloader the image needs and the boot order it relies on. */
  bootloader?: { minimumDate: string; bootOrder: string };
};

/** The thresholds for a profile: its `qa` block, its Wi-Fi, and its firmware's bootloader needs; `overrides` for a SKU or a test. */
export function qaThresholdsFor(profile: Pick<HardwareProfile, 'qa' | 'features' | 'firmware'>, overrides: Partial<QaThresholds> = {}): QaThresholds {
  const bootloader = profile.firmware.kind === 'raspberrypi' ? { minimumDate: profile.firmware.eeprom.minimumBootloaderDate, bootOrder: profile.firmware.eeprom.bootOrder } : undefined;
  return { ...profile.qa, wifiRequired: profile.features.wifi, ...(bootloader ? { bootloader } : {}), ...overrides };
}
