import type { DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import { partitionByRole } from '../../disk/layout.ts';

/** The fsck unit of the data partition; see dataFsckUnit. */
export const DATA_FSCK_UNIT = 'memu-data-fsck.service';

/** The root filesystem's fstab: the data partition, then the firmware's partitions as the boot backend gives them. */
export function fstab(layout: DiskLayout, firmwareLines: string[]): string {
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
    ...firmwareLines,
  ];
  return `${lines.join('\n')}\n`;
}

/** systemd's unit name for a device path (what `systemd-escape --path --suffix=device` prints, for the characters a PARTUUID path has). */
function deviceUnitName(path: string): string {
  return `${path.slice(1).replaceAll('-', '\\x2d').replaceAll('/', '-')}.device`;
}

/**
 * The data partition's boot-time check: what systemd-fsck@.service does, minus its
 * BindsTo= on the device, which would stop the check and, through the mount's Requires=,
 * unmount /var/lib/memu while first boot grows the partition (udev drops and re-adds the
 * device unit then). Requires= waits for the device without following it away.
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
