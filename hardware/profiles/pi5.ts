import type { KernelPin, ProfileInput } from '../profile.ts';

/**
 * Debian's arm64 kernel from trixie-backports, by exact version: the first Debian kernels
 * with the Pi 5's PCIe, RP1 (Ethernet, USB, GPIO) and SD card drivers and both board
 * revisions' device trees. The generic flavour, with 4K pages: the 16K flavour breaks
 * container images built with jemalloc. qemu-arm64 boots the same pin.
 * When the archive drops this version the build says which one replaced it.
 */
export const PI5_KERNEL: KernelPin = {
  package: 'linux-image-7.3.4+deb13-arm64',
  version: '7.3.4-1~bpo13+1',
  suite: 'trixie-backports',
  metaPackage: 'linux-image-arm64',
  // Its pre-dependency linux-base >= 4.17 (which installs the split kernel packages' files
  // into /boot) is only in backports; trixie has 4.12.
  fromSuite: ['linux-base'],
  requiredConfig: [
    'CONFIG_ARM64_4K_PAGES=y',
    // The PCIe host controller and its MSI controller (MIP), the NVMe drive behind it.
    'CONFIG_PCIE_BRCMSTB',
    'CONFIG_BCM2712_MIP',
    'CONFIG_BLK_DEV_NVME',
    // RP1, the I/O controller on the internal PCIe link (Ethernet, USB, GPIO), its clocks and pins.
    'CONFIG_MISC_RP1',
    'CONFIG_COMMON_CLK_RP1',
    'CONFIG_PINCTRL_RP1',
    // The SD card, the root file system, the serial console on the debug connector.
    'CONFIG_MMC_SDHCI_BRCMSTB',
    'CONFIG_EXT4_FS',
    'CONFIG_SERIAL_AMBA_PL011=y',
  ],
};

/**
 * Raspberry Pi 5 (8 GB) booting from an NVMe drive on an M.2 HAT, with Debian's own arm64
 * kernel (from trixie-backports, for the Pi 5's drivers and device trees) started by the
 * firmware in the board's EEPROM. QA thresholds are placeholders until factory QA has
 * measured real units.
 */
export const pi5: ProfileInput = {
  name: 'pi5',
  description: 'Raspberry Pi 5 (8 GB) with an NVMe drive on an M.2 HAT, optional Hailo NPU',
  arch: 'arm64',
  kind: 'product',
  firmware: {
    kind: 'raspberrypi',
    // The backend writes the kernel, initrd, arm_64bit and serial console lines; these add to them.
    configTxt: ['disable_splash=1'],
    // ttyAMA10: the UART on the debug connector between the HDMI ports (serial10 in the Pi 5's device tree).
    // panic=10: also reboot after a panic before sysctl.d is read (90-memu.conf sets it after).
    kernelCmdline: ['console=tty1', 'console=ttyAMA10,115200', 'quiet', 'panic=10'],
    eeprom: {
      // Nibbles are tried from the right (Raspberry Pi's BOOT_ORDER documentation):
      // 6 = NVMe, then 1 = SD card, then 4 = USB mass storage, then f = start over.
      bootOrder: '0xf416',
      // The first bootloader that loads files of 32 MiB and more from NVMe (rpi-eeprom
      // release notes, 2025-06-09); the image's boot files stay below that size anyway.
      minimumBootloaderDate: '2025-06-09',
    },
    // Bootloaders older than 2025-06-09 fail every read of 32 MiB or more from NVMe (rpi-eeprom
    // release notes, "NVMe: Fix loading of files > 32MB"), and a board boots once before its
    // bootloader can be updated: every boot file stays below this, whatever the minimum above.
    bootFileLimitBytes: 32 * 1024 * 1024,
  },
  partitions: [
    // autoboot.txt and the preseed file only.
    { role: 'bootconfig', label: 'memu-bootconfig', filesystem: 'vfat', sizeMiB: 16 },
    // Kernel (about 18 MB compressed), initrd and device trees, with room for larger ones.
    { role: 'boot-a', label: 'memu-boot-a', filesystem: 'vfat', sizeMiB: 256 },
    { role: 'boot-b', label: 'memu-boot-b', filesystem: 'vfat', sizeMiB: 256, shipsEmpty: true },
    { role: 'root-a', label: 'memu-root-a', filesystem: 'ext4', sizeMiB: 4096 },
    { role: 'root-b', label: 'memu-root-b', filesystem: 'ext4', sizeMiB: 4096, shipsEmpty: true },
    { role: 'data', label: 'memu-data', filesystem: 'ext4', sizeMiB: 2048 },
  ],
  rootfs: {
    suite: 'trixie',
    mirror: 'http://deb.debian.org/debian',
    components: ['main', 'non-free-firmware'],
    packages: [
      // Wi-Fi and Bluetooth firmware of the CYW43455, with the Pi 5's board file.
      'firmware-brcm80211',
      'wpasupplicant',
      // Wi-Fi scans in the setup wizard.
      'iw',
      'nvme-cli',
      'smartmontools',
    ],
    // trixie's own kernel (6.12) lacks Pi 5 support this image needs (the RP1 drivers among it); the kernel comes from here.
    extraAptSources: [{ name: 'trixie-backports', uri: 'http://deb.debian.org/debian', suites: ['trixie-backports'], components: ['main', 'non-free-firmware'] }],
    kernel: PI5_KERNEL,
  },
  features: { npu: 'hailo-optional', wifi: true },
  // Pi 5 NVMe drives that vanish on a warm reboot are the best-known failure of this board: QA reboots 20 times in a row.
  // Four Cortex-A76 cores; one PCIe lane, Gen 2 officially through the M.2 HAT; the
  // firmware slows the cores from 85 °C.
  qa: {
    minMemoryMiB: 7500,
    memoryTestMiB: 256,
    minCpuCores: 4,
    cpuModelPattern: '^Cortex-A76$',
    boardModelPattern: '^Raspberry Pi 5\\b',
    thermalSensorRequired: true,
    maxIdleTemperatureC: 70,
    maxLoadTemperatureC: 85,
    stressSeconds: 60,
    nvmeRequired: true,
    minPcieGTps: 5,
    minPcieLinkWidth: 1,
    maxNvmePercentUsed: 1,
    diskTestMiB: 1024,
    minDiskWriteMBps: 200,
    minDiskReadMBps: 300,
    npuRequired: false,
    minEthernetMbps: 1000,
    minWifiNetworks: 1,
    watchdogRequired: true,
    rebootCycles: 20,
    // A guess until real units are measured: a healthy boot reaches the agent well within a minute.
    maxBootSeconds: 120,
  },
};
