import type { DiskLayout } from '../../shared/contracts/disk-layout.ts';
import { raucCompatible } from './rauc-bundle.ts';

/**
 * RAUC's view of a Memu device (`/etc/rauc/system.conf` in every root filesystem),
 * derived from the profile's layout so the slots can never disagree with the disk.
 *
 * - Slots are found by partition label (`/dev/disk/by-partlabel/memu-root-a`), never by
 *   device name; `bootname=a|b` is what `memu.slot=` on the kernel command line names.
 * - Only `verity` bundles are accepted (`bundle-formats=-plain`): they stream and are
 *   checked block by block, and a plain bundle would have to be downloaded whole first.
 * - The keyring is the release CA (`/etc/rauc/keyring.pem`), and only certificates issued
 *   for code signing may sign (`check-purpose=codesign`).
 * - RAUC's shared data (slot status, the block hash indexes adaptive updates keep for
 *   each slot) lives on the data partition, so it survives a switch of slots and a
 *   rollback does not replay an old slot's view of the slots.
 * - The boot loader is ours: `bootloader=custom` calls `memu-agent rauc-boot-backend`
 *   (RAUC's custom backend interface), which answers from the agent's BootSlots contract
 *   (shared/contracts/boot-slots.ts), so systemd-boot counting and the Pi's tryboot stay
 *   in one place:
 *
 *     get-primary            → the slot `BootSlots.status().nextBoot` names
 *     set-primary <a|b>      → the idle slot: copy its kernel and initrd from the slot's
 *                              /boot to the ESP (x86-64; the Pi's boot partition was
 *                              written by RAUC), then `armTrial(slot, …)`; the running
 *                              slot: nothing (it is already what the loader falls back to)
 *     get-state <a|b>        → `good` for a good or armed trial slot, `bad` for a bad
 *                              or absent one
 *     set-state <a|b> good   → `markCurrentGood()` when it is the running slot; RAUC
 *                              calls this only from `rauc status mark-good`, which the
 *                              agent runs once the stack is healthy
 *     set-state <a|b> bad    → nothing to do for a slot that is not armed; the loader
 *                              already skips a slot whose attempts are used up
 *     get-current            → the slot in `memu.slot=` (from /proc/cmdline)
 *
 *   Each answer is one word on stdout and exit 0; any failure is a non-zero exit with
 *   the reason on stderr, which RAUC reports.
 */
export const RAUC_SYSTEM_CONF_PATH = '/etc/rauc/system.conf';
export const RAUC_KEYRING_PATH = '/etc/rauc/keyring.pem';
export const RAUC_DATA_DIRECTORY = '/var/lib/memu/rauc';
export const RAUC_BOOT_BACKEND_COMMAND = '/usr/lib/memu/rauc-boot-backend';

export function raucSystemConf(layout: DiskLayout): string {
  const lines = [
    '# Made by memu from the disk layout (image/release/rauc-system-conf.ts); do not edit.',
    '[system]',
    `compatible=${raucCompatible(layout.profile)}`,
    'bootloader=custom',
    'bundle-formats=-plain',
    `data-directory=${RAUC_DATA_DIRECTORY}`,
    '',
    '[keyring]',
    `path=${RAUC_KEYRING_PATH}`,
    'check-purpose=codesign',
    '',
    '[handlers]',
    `bootloader-custom-backend=${RAUC_BOOT_BACKEND_COMMAND}`,
  ];
  const hasBootPartitions = layout.partitions.some((p) => p.role === 'boot-a');
  for (const [index, slot] of (['a', 'b'] as const).entries()) {
    const root = layout.partitions.find((p) => p.role === `root-${slot}`);
    if (!root) throw new Error(`layout of ${layout.profile} has no root-${slot} partition`);
    lines.push('', `[slot.rootfs.${index}]`, `device=/dev/disk/by-partlabel/${root.label}`, 'type=ext4', `bootname=${slot}`);
    if (hasBootPartitions) {
      const boot = layout.partitions.find((p) => p.role === `boot-${slot}`);
      if (!boot) throw new Error(`layout of ${layout.profile} has boot-a but no boot-${slot} partition`);
      lines.push('', `[slot.boot.${index}]`, `device=/dev/disk/by-partlabel/${boot.label}`, 'type=vfat', `parent=rootfs.${index}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
