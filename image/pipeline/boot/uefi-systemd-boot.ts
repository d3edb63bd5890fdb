import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { HardwareProfile } from '../../../hardware/profile.ts';
import { DISK_LAYOUT_PATH, type DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import { partitionByRole } from '../../disk/layout.ts';
import { replaceFile } from '../staging.ts';

/**
 * Stage 4: boot. x86-64 boots with systemd-boot from the ESP: it reads only FAT, so each
 * root slot's kernel and initrd are copied to `/memu/<slot>/` on the ESP and a Boot Loader
 * Specification entry per slot names the root by PARTUUID. systemd-boot's boot counting
 * (`memu-b+3.conf` entries, blessed by systemd-bless-boot) gives the A/B try counter that
 * updates will use. The root slot itself also records the layout and fstab.
 */
export interface BootResult {
  /** Directory holding the ESP's files, ready for the FAT stage. */
  espDir: string;
  kernelVersion: string;
  cmdline: string;
}

export function kernelCmdline(profile: HardwareProfile, layout: DiskLayout, slot: 'a' | 'b'): string {
  const root = partitionByRole(layout, slot === 'a' ? 'root-a' : 'root-b');
  return [`root=PARTUUID=${root.partUuid}`, 'rw', 'rootwait', `memu.slot=${slot}`, ...profile.firmware.kernelCmdline].join(' ');
}

/** The fsck unit of the data partition; see dataFsckUnit. */
export const DATA_FSCK_UNIT = 'memu-data-fsck.service';

export function fstab(layout: DiskLayout): string {
  const data = partitionByRole(layout, 'data');
  const lines = [
    '# Memu OS: partitions by PARTUUID; roles are listed in /etc/memu/layout.json.',
    '# The root slot comes from the kernel command line (root=PARTUUID=...).',
    // nofail: a device whose data partition is broken still boots far enough for the
    // agent to report it; docker.service requires the mount, so it will not start.
    // device-bound=false and fsck pass 0 with our own fsck unit: growing the partition on
    // first boot makes udev drop its device unit for a moment, and both a mount bound to the
    // device and systemd-fsck@ (which is) would then unmount /var/lib/memu under the agent.
    `PARTUUID=${data.partUuid} /var/lib/memu ext4 defaults,noatime,nofail,x-systemd.device-timeout=60s,x-systemd.device-bound=false,x-systemd.requires=${DATA_FSCK_UNIT} 0 0`,
  ];
  const esp = layout.partitions.find((p) => p.role === 'esp');
  if (esp) lines.push(`PARTUUID=${esp.partUuid} /boot/efi vfat umask=0077,noauto,x-systemd.automount,x-systemd.idle-timeout=60 0 2`);
  return `${lines.join('\n')}\n`;
}

/** systemd's unit name for a device path (what `systemd-escape --path --suffix=device` prints, for the characters a PARTUUID path has). */
function deviceUnitName(path: string): string {
  return `${path.slice(1).replaceAll('-', '\\x2d').replaceAll('/', '-')}.device`;
}

/**
 * The data partition's boot-time check: what systemd-fsck@.service does, minus its
 * BindsTo= on the device. With it, the first boot's partition growth (udev drops and
 * re-adds the device unit) stopped the fsck unit and, through the mount's Requires=,
 * unmounted /var/lib/memu in about one first boot in ten here. Requires= waits for the device
 * without following it away.
 */
export function dataFsckUnit(layout: DiskLayout): string {
  const device = `/dev/disk/by-partuuid/${partitionByRole(layout, 'data').partUuid}`;
  const unit = deviceUnitName(device);
  return [
    '[Unit]',
    'Description=File System Check of the family data partition',
    'Documentation=man:systemd-fsck@.service(8)',
    'DefaultDependencies=no',
    `Requires=${unit}`,
    'IgnoreOnIsolate=yes',
    'Conflicts=reboot.target kexec.target poweroff.target halt.target',
    `After=${unit} systemd-fsck-root.service local-fs-pre.target`,
    'Before=systemd-quotacheck.service shutdown.target',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/usr/lib/systemd/systemd-fsck ${device}`,
    'TimeoutSec=infinity',
    '',
  ].join('\n');
}

async function newestKernel(tree: string): Promise<string> {
  const versions = (await readdir(join(tree, 'boot')))
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const v = versions.at(-1);
  if (!v) throw new Error('the root filesystem has no kernel in /boot; the profile must install a linux-image package');
  return v;
}

export async function prepareBoot(opts: { tree: string; workDir: string; profile: HardwareProfile; layout: DiskLayout }): Promise<BootResult> {
  const { tree, profile, layout } = opts;
  if (profile.firmware.kind !== 'uefi') throw new Error(`boot stage for ${profile.firmware.kind} firmware is not part of this release`);
  const kernelVersion = await newestKernel(tree);
  const cmdline = kernelCmdline(profile, layout, 'a');

  await replaceFile(tree, 'etc/fstab', fstab(layout));
  await replaceFile(tree, `etc/systemd/system/${DATA_FSCK_UNIT}`, dataFsckUnit(layout));
  await replaceFile(tree, DISK_LAYOUT_PATH.slice(1), `${JSON.stringify(layout, null, 2)}\n`);
  await replaceFile(tree, 'etc/kernel/cmdline', `${cmdline}\n`);
  await mkdir(join(tree, 'boot/efi'), { recursive: true });

  const esp = join(opts.workDir, 'esp');
  await mkdir(join(esp, 'EFI/BOOT'), { recursive: true });
  await mkdir(join(esp, 'memu/a'), { recursive: true });
  await mkdir(join(esp, 'loader/entries'), { recursive: true });
  await copyFile(join(tree, profile.firmware.systemdBootBinary), join(esp, 'EFI/BOOT', profile.firmware.efiBootFile));
  await copyFile(join(tree, 'boot', `vmlinuz-${kernelVersion}`), join(esp, 'memu/a/vmlinuz'));
  await copyFile(join(tree, 'boot', `initrd.img-${kernelVersion}`), join(esp, 'memu/a/initrd.img'));
  await replaceFile(esp, 'loader/loader.conf', ['default memu-a.conf', 'timeout 0', 'editor no', 'console-mode keep', ''].join('\n'));
  await replaceFile(
    esp,
    'loader/entries/memu-a.conf',
    [`title Memu OS (slot A)`, `version ${kernelVersion}`, 'linux /memu/a/vmlinuz', 'initrd /memu/a/initrd.img', `options ${cmdline}`, ''].join('\n'),
  );
  return { espDir: esp, kernelVersion, cmdline };
}
