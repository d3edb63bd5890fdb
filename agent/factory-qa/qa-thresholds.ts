import type { HardwareProfile } from '../../hardware/index.ts';

/**
 * Everything the QA checks hold a unit against. The profile's `qa` block has the first
 * five; the rest are not in the profile schema yet, so they have defaults here per
 * profile (MISSING_FROM_PROFILE lists them, so they can move into hardware/profile.ts as
 * data once real units have been measured; `memu qa thresholds` suggests the numbers).
 */
export interface QaThresholds {
  // From the profile's `qa` block.
  minMemoryMiB: number;
  maxIdleTemperatureC: number;
  minDiskWriteMBps: number;
  minDiskReadMBps: number;
  rebootCycles: number;
  // Not in the profile yet.
  minCpuCores: number;
  /** A regular expression the CPU model must match; undefined: any model. */
  cpuModelPattern?: string;
  /** A regular expression the board's model string must match. */
  boardModelPattern: string;
  /** How much memory memtester tests (one pass), in MiB; 0 skips the test. */
  memoryTestMiB: number;
  nvmeRequired: boolean;
  /** The PCIe link the NVMe drive must train to: GT/s per lane (2.5 Gen 1, 5.0 Gen 2, 8.0 Gen 3) and lanes; 0 skips. */
  minPcieGTps: number;
  minPcieLinkWidth: number;
  /** A new drive has used almost none of its rated life; more means a used or faulty drive. */
  maxNvmePercentUsed: number;
  /** The bounded CPU load (stress-ng) before the second temperature reading. */
  stressSeconds: number;
  maxLoadTemperatureC: number;
  /** The SKU being tested has an NPU fitted (the profile only says one is optional). */
  npuRequired: boolean;
  /** 0: a link is enough (virtual NICs report no speed). */
  minEthernetMbps: number;
  wifiRequired: boolean;
  minWifiNetworks: number;
  watchdogRequired: boolean;
  /** Raspberry Pi targets: the bootloader the image needs and the boot order it relies on. */
  bootloader?: { minimumDate: string; bootOrder: string };
}

export type ProfileQaFields = keyof HardwareProfile['qa'];
export const MISSING_FROM_PROFILE = [
  'minCpuCores',
  'cpuModelPattern',
  'boardModelPattern',
  'memoryTestMiB',
  'nvmeRequired',
  'minPcieGTps',
  'minPcieLinkWidth',
  'maxNvmePercentUsed',
  'stressSeconds',
  'maxLoadTemperatureC',
  'npuRequired',
  'minEthernetMbps',
  'minWifiNetworks',
  'watchdogRequired',
] as const satisfies readonly Exclude<keyof QaThresholds, ProfileQaFields | 'wifiRequired' | 'bootloader'>[];

type Defaults = Omit<QaThresholds, ProfileQaFields | 'wifiRequired' | 'bootloader'>;

/**
 * Per-profile defaults, from the boards' data sheets until measurements replace them:
 * a Pi 5 has four Cortex-A76 cores and one PCIe lane (Gen 2 officially, through the M.2
 * HAT); its firmware slows the cores from 85 °C. A NUC's NVMe slot is four lanes of at
 * least Gen 3. The VM has a virtio disk, no link speed and whatever cores QEMU gives it.
 */
const DEFAULTS: Record<string, Defaults> = {
  pi5: {
    minCpuCores: 4,
    cpuModelPattern: '^Cortex-A76$',
    boardModelPattern: '^Raspberry Pi 5\\b',
    memoryTestMiB: 256,
    nvmeRequired: true,
    minPcieGTps: 5,
    minPcieLinkWidth: 1,
    maxNvmePercentUsed: 1,
    stressSeconds: 60,
    maxLoadTemperatureC: 85,
    npuRequired: false,
    minEthernetMbps: 1000,
    minWifiNetworks: 1,
    watchdogRequired: true,
  },
  nuc: {
    minCpuCores: 4,
    boardModelPattern: '.',
    memoryTestMiB: 256,
    nvmeRequired: true,
    minPcieGTps: 8,
    minPcieLinkWidth: 4,
    maxNvmePercentUsed: 1,
    stressSeconds: 60,
    maxLoadTemperatureC: 95,
    npuRequired: false,
    minEthernetMbps: 1000,
    minWifiNetworks: 1,
    watchdogRequired: true,
  },
  'qemu-amd64': {
    minCpuCores: 1,
    boardModelPattern: '^QEMU\\b|^Standard PC',
    memoryTestMiB: 16,
    nvmeRequired: false,
    minPcieGTps: 0,
    minPcieLinkWidth: 0,
    maxNvmePercentUsed: 1,
    stressSeconds: 5,
    maxLoadTemperatureC: 95,
    npuRequired: false,
    minEthernetMbps: 0,
    minWifiNetworks: 0,
    watchdogRequired: true,
  },
};

/** The thresholds for a profile: its `qa` block, the defaults above, and its firmware's bootloader needs. */
export function qaThresholdsFor(profile: Pick<HardwareProfile, 'name' | 'qa' | 'features' | 'firmware'>, overrides: Partial<QaThresholds> = {}): QaThresholds {
  const defaults = DEFAULTS[profile.name] ?? DEFAULTS.nuc!;
  const bootloader = profile.firmware.kind === 'raspberrypi' ? { minimumDate: profile.firmware.eeprom.minimumBootloaderDate, bootOrder: profile.firmware.eeprom.bootOrder } : undefined;
  return { ...defaults, ...profile.qa, wifiRequired: profile.features.wifi, ...(bootloader ? { bootloader } : {}), ...overrides };
}
