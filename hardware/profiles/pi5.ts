import type { ProfileInput } from '../profile.ts';

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
      'linux-image-arm64',
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
  },
  features: { npu: 'hailo-optional', wifi: true },
  unfinished:
    'its root filesystem does not pin the trixie-backports kernel yet (apt installs trixie\'s 6.12, which cannot boot a Pi 5), and its initrd is made before the overlay that adds rp1_pci and irq-bcm2712-mip',
  // Pi 5 NVMe drives that vanish on a warm reboot are the best-known failure of this board: QA reboots 20 times in a row.
  qa: { minMemoryMiB: 7500, maxIdleTemperatureC: 70, minDiskWriteMBps: 200, minDiskReadMBps: 300, rebootCycles: 20 },
};
