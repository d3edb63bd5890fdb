import type { ProfileInput } from '../profile.ts';
import { VM_QA } from './vm-qa.ts';

/** An x86-64 UEFI virtual machine: the CI and demo target. Never shipped. */
export const qemuAmd64: ProfileInput = {
  name: 'qemu-amd64',
  description: 'x86-64 UEFI virtual machine (QEMU q35 + OVMF) for tests and demos',
  arch: 'amd64',
  kind: 'test',
  firmware: {
    kind: 'uefi',
    efiBootFile: 'BOOTX64.EFI',
    systemdBootBinary: 'usr/lib/systemd/boot/efi/systemd-bootx64.efi',
    // panic=10 as on real hardware. no_timer_check: under software emulation on a busy host
    // the kernel's early check of the timer interrupt can miss it and panic; a VM's timer
    // is known to work.
    kernelCmdline: ['console=tty0', 'console=ttyS0,115200', 'systemd.show_status=true', 'panic=10', 'no_timer_check'],
  },
  partitions: [
    { role: 'esp', label: 'memu-esp', filesystem: 'vfat', sizeMiB: 256 },
    { role: 'root-a', label: 'memu-root-a', filesystem: 'ext4', sizeMiB: 1536 },
    { role: 'root-b', label: 'memu-root-b', filesystem: 'ext4', sizeMiB: 1536, shipsEmpty: true },
    { role: 'data', label: 'memu-data', filesystem: 'ext4', sizeMiB: 512 },
  ],
  rootfs: {
    suite: 'trixie',
    mirror: 'http://deb.debian.org/debian',
    components: ['main'],
    // qemu-guest-agent and docker-cli: the end-to-end tests act inside the box through the
    // guest agent (image/vm/guest-agent.ts), with Docker's command line (docker.io only recommends it).
    packages: ['linux-image-amd64', 'systemd-boot-efi', 'qemu-guest-agent', 'docker-cli'],
    extraAptSources: [],
  },
  features: { npu: 'none', wifi: false },
  qa: VM_QA,
  vm: {
    qemuBinary: 'qemu-system-x86_64',
    machine: 'q35',
    cpu: 'max',
    firmwareCode: '/usr/share/OVMF/OVMF_CODE_4M.fd',
    firmwareVarsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd',
    diskInterface: 'virtio',
    // Intel 6300ESB, driven by Linux's i6300esb module: the hardware watchdog of the x86 targets' kind.
    watchdogDevice: 'i6300esb',
  },
};
