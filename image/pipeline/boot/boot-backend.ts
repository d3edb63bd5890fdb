import type { HardwareProfile, PartitionRole } from '../../../hardware/profile.ts';
import type { DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import type { BootSlot } from '../../../shared/contracts/boot-slots.ts';

/**
 * How an image boots, per firmware kind: one backend per `profile.firmware.kind`, chosen
 * in one place (bootBackendFor in boot-stage.ts). A backend reads the staged root tree
 * (kernel, boot loader binaries), may add the files its firmware needs in the root tree
 * (mount points, kernel-install settings), and says in its output what goes where: which
 * FAT partition gets which tree, the fstab lines for those partitions, the kernel, and
 * the command line each slot boots with.
 */
export type Firmware = HardwareProfile['firmware'];
export type FirmwareKind = Firmware['kind'];

export interface BootInputs<F extends Firmware = Firmware> {
  /** The staging root tree; the backend may add files, never edit the cache's (see staging.ts). */
  tree: string;
  /** A directory of the build's own, for the FAT trees. */
  workDir: string;
  profile: HardwareProfile;
  firmware: F;
  layout: DiskLayout;
}

/** A directory whose files become one FAT partition of the layout. */
export interface FatPartitionTree {
  role: PartitionRole;
  /** The FAT volume label (up to 11 characters). */
  volumeLabel: string;
  sourceDir: string;
}

export interface BootOutput {
  kernelVersion: string;
  /** The kernel command line each root slot boots with (slot b's for when an update fills it). */
  kernelCmdline: Record<BootSlot, string>;
  /** One tree for every FAT partition of the layout that does not ship empty. */
  fatPartitions: FatPartitionTree[];
  /** fstab lines for the firmware's partitions (the ESP at /boot/efi), after the data partition's. */
  fstabLines: string[];
}

export interface BootBackend<F extends Firmware = Firmware> {
  /** What the backend boots with, for logs: `uefi/systemd-boot`. */
  readonly name: string;
  prepare(inputs: BootInputs<F>): Promise<BootOutput>;
}
