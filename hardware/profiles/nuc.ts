import type { ProfileInput } from '../profile.ts';

/**
 * An x86-64 UEFI mini PC (Intel NUC class) with an NVMe or SATA drive.
 * Firmware packages cover the common Intel/AMD/Realtek NICs, Wi-Fi and GPU microcode.
 * QA thresholds are placeholders until factory QA has measured real units.
 */
export const nuc: ProfileInput = {
  name: 'nuc',
  description: 'x86-64 UEFI mini PC (NUC class), NVMe or SATA, optional Hailo-8/8L M.2 card',
  arch: 'amd64',
  kind: 'product',
  firmware: {
    kind: 'uefi',
    efiBootFile: 'BOOTX64.EFI',
    systemdBootBinary: 'usr/lib/systemd/boot/efi/systemd-bootx64.efi',
    // panic=10: also reboot after a panic before sysctl.d is read (90-memu.conf sets it after).
    kernelCmdline: ['console=tty0', 'quiet', 'panic=10'],
  },
  partitions: [
    { role: 'esp', label: 'memu-esp', filesystem: 'vfat', sizeMiB: 512 },
    { role: 'root-a', label: 'memu-root-a', filesystem: 'ext4', sizeMiB: 4096 },
    { role: 'root-b', label: 'memu-root-b', filesystem: 'ext4', sizeMiB: 4096, shipsEmpty: true },
    { role: 'data', label: 'memu-data', filesystem: 'ext4', sizeMiB: 2048 },
  ],
  rootfs: {
    suite: 'trixie',
    mirror: 'http://deb.debian.org/debian',
    components: ['main', 'non-free-firmware'],
    packages: [
      'linux-image-amd64',
      'systemd-boot-efi',
      'intel-microcode',
      'amd64-microcode',
      'firmware-linux-free',
      'firmware-realtek',
      'firmware-iwlwifi',
      'firmware-misc-nonfree',
      'wpasupplicant',
      // Wi-Fi scans in the setup wizard.
      'iw',
      'nvme-cli',
      'smartmontools',
    ],
    extraAptSources: [],
  },
  features: { npu: 'hailo-optional', wifi: true },
  // A NUC's NVMe slot is four lanes of at least Gen 3; boards of many makers, so any model string.
  qa: {
    minMemoryMiB: 7500,
    memoryTestMiB: 256,
    minCpuCores: 4,
    boardModelPattern: '.',
    thermalSensorRequired: true,
    maxIdleTemperatureC: 70,
    maxLoadTemperatureC: 95,
    stressSeconds: 60,
    nvmeRequired: true,
    minPcieGTps: 8,
    minPcieLinkWidth: 4,
    maxNvmePercentUsed: 1,
    diskTestMiB: 1024,
    minDiskWriteMBps: 300,
    minDiskReadMBps: 500,
    npuRequired: false,
    minEthernetMbps: 1000,
    minWifiNetworks: 1,
    watchdogRequired: true,
    rebootCycles: 3,
    // A guess until real units are measured: a healthy boot reaches the agent well within a minute.
    maxBootSeconds: 120,
  },
};
