import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { HardwareProfile } from '../../../hardware/profile.ts';
import type { DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import { SLOT_KERNEL_PARAMETER, type BootSlot } from '../../../shared/contracts/boot-slots.ts';
import { partitionByRole } from '../../disk/layout.ts';

/**
 * What every boot backend boots a slot with: the newest kernel installed in the root tree,
 * and a command line naming the slot's root by PARTUUID and the slot itself.
 */
export function kernelCmdlineOf(profile: HardwareProfile, layout: DiskLayout, slot: BootSlot): string {
  const root = partitionByRole(layout, slot === 'a' ? 'root-a' : 'root-b');
  return [`root=PARTUUID=${root.partUuid}`, 'rw', 'rootwait', `${SLOT_KERNEL_PARAMETER}=${slot}`, ...profile.firmware.kernelCmdline].join(' ');
}

/** The version of the newest `/boot/vmlinuz-<version>` in the tree. */
export async function newestKernel(tree: string): Promise<string> {
  const versions = (await readdir(join(tree, 'boot')))
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const v = versions.at(-1);
  if (!v) throw new Error('the root filesystem has no kernel in /boot; the profile must install a linux-image package');
  return v;
}
