import type { ProfileInput } from '../profile.ts';
import { VM_QA } from './vm-qa.ts';
import { PI5_KERNEL } from './pi5.ts';

/**
 * An arm64 UEFI virtual machine (QEMU `virt` + Debian's AAVMF) running the Pi 5's userland
 * and its pinned trixie-backports kernel, so that CI boots the product's arm64 system on
 * every run. It boots through systemd-boot and the same A/B entries as the x86 targets:
 * Debian's arm64 kernel is an EFI application (EFI stub), which the Pi firmware never
 * uses. Never shipped.
 */
export const qemuArm64: ProfileInput = {
  name: 'qemu-arm64',
  description: 'arm64 UEFI virtual machine (QEMU virt + AAVMF) with the Pi 5 userland and kernel, for tests and demos',
  arch: 'arm64',
  kind: 'test',
  firmware: {
    kind: 'uefi',
    efiBootFile: 'BOOTAA64.EFI',
    systemdBootBinary: 'usr/lib/systemd/boot/efi/systemd-bootaa64.efi',
    // ttyAMA0: the virt machine's PL011 UART, which QEMU's -serial writes to the log.
    // no_timer_check as on qemu-amd64; panic=10 as on real hardware.
    kernelCmdline: ['console=tty0', 'console=ttyAMA0,115200', 'systemd.show_status=true', 'panic=10', 'no_timer_check'],
  },
  partitions: [
    { role: 'esp', label: 'memu-esp', filesystem: 'vfat', sizeMiB: 256 },
    { role: 'root-a', label: 'memu-root-a', filesystem: 'ext4', sizeMiB: 2048 },
    { role: 'root-b', label: 'memu-root-b', filesystem: 'ext4', sizeMiB: 2048, shipsEmpty: true },
    { role: 'data', label: 'memu-data', filesystem: 'ext4', sizeMiB: 512 },
  ],
  rootfs: {
    suite: 'trixie',
    mirror: 'http://deb.debian.org/debian',
    components: ['main'],
    // As qemu-amd64: the guest agent and Docker's command line for the end-to-end tests.
    packages: ['systemd-boot-efi', 'qemu-guest-agent', 'docker-cli'],
    extraAptSources: [{ name: 'trixie-backports', uri: 'http://deb.debian.org/debian', suites: ['trixie-backports'], components: ['main'] }],
    kernel: PI5_KERNEL,
  },
  features: { npu: 'none', wifi: false },
  qa: VM_QA,
  vm: {
    qemuBinary: 'qemu-system-aarch64',
    machine: 'virt',
    // The Pi 5's core. `max` adds pointer authentication, whose emulation costs TCG dearly.
    cpu: 'cortex-a76',
    firmwareCode: '/usr/share/AAVMF/AAVMF_CODE.fd',
    firmwareVarsTemplate: '/usr/share/AAVMF/AAVMF_VARS.fd',
    diskInterface: 'virtio',
    // A PCI device, so it works on virt too; Debian's arm64 kernel has its driver (CONFIG_I6300ESB_WDT=m).
    watchdogDevice: 'i6300esb',
  },
};
