import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HardwareProfile } from '../../../hardware/profile.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { DISK_LAYOUT_PATH, type DiskLayout } from '../../../shared/contracts/disk-layout.ts';
import { replaceFile } from '../staging.ts';
import type { BootBackend, BootOutput, FatPartitionTree } from './boot-backend.ts';
import { DATA_FSCK_UNIT, dataFsckUnit, fstab } from './data-partition-mount.ts';
import { raspberryPiFirmware } from './raspberry-pi-firmware.ts';
import { uefiSystemdBoot } from './uefi-systemd-boot.ts';

/** A boot backend bound to the profile's firmware, ready for the boot stage. */
export interface ChosenBootBackend {
  name: string;
  prepare(inputs: { tree: string; workDir: string; layout: DiskLayout }): Promise<BootOutput>;
}

/** The one place that picks the boot backend for a profile's firmware. */
export function bootBackendFor(profile: HardwareProfile): ChosenBootBackend {
  const firmware = profile.firmware;
  switch (firmware.kind) {
    case 'uefi':
      return bind(uefiSystemdBoot, profile, firmware);
    case 'raspberrypi':
      return bind(raspberryPiFirmware, profile, firmware);
  }
}

function bind<F extends HardwareProfile['firmware']>(backend: BootBackend<F>, profile: HardwareProfile, firmware: F): ChosenBootBackend {
  return { name: backend.name, prepare: (inputs) => backend.prepare({ ...inputs, profile, firmware }) };
}

/**
 * Stage: boot. The backend lays out the firmware's FAT trees; whatever the firmware, the
 * root slot records the disk layout, mounts the data partition by PARTUUID through its
 * own fsck unit, and gets the backend's fstab lines.
 */
export async function prepareBoot(opts: { backend: ChosenBootBackend; tree: string; workDir: string; profile: HardwareProfile; layout: DiskLayout }): Promise<BootOutput> {
  const { tree, layout } = opts;
  const boot = await opts.backend.prepare({ tree, workDir: opts.workDir, layout });
  checkFatPartitions(opts.profile, layout, boot.fatPartitions, opts.backend.name);
  await checkKernelConfig(tree, boot.kernelVersion, opts.profile);
  await replaceFile(tree, 'etc/fstab', fstab(layout, boot.fstabLines));
  await replaceFile(tree, `etc/systemd/system/${DATA_FSCK_UNIT}`, dataFsckUnit(layout));
  await replaceFile(tree, DISK_LAYOUT_PATH.slice(1), `${JSON.stringify(layout, null, 2)}\n`);
  return boot;
}

/**
 * The kernel the image boots has every option the profile's kernel pin requires, read from
 * the configuration its package installs (`/boot/config-<release>`; the split packages of
 * Debian's 7.x kernels keep it in `/usr/lib/modules/<release>/config`).
 */
export async function checkKernelConfig(tree: string, kernelVersion: string, profile: HardwareProfile): Promise<void> {
  const required = profile.rootfs.kernel?.requiredConfig ?? [];
  if (required.length === 0) return;
  const candidates = [`boot/config-${kernelVersion}`, `usr/lib/modules/${kernelVersion}/config`];
  let text: string | undefined;
  for (const path of candidates) {
    text = await readFile(join(tree, path), 'utf8').catch(() => undefined);
    if (text !== undefined) break;
  }
  if (text === undefined) {
    throw new MemuError(`kernel ${kernelVersion} has no configuration in /${candidates.join(' or /')}, so its options cannot be checked`, ExitCode.badInput, 'install a Debian kernel package, which ships its configuration');
  }
  const set = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(CONFIG_[A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) set.set(m[1]!, m[2]!);
  }
  const problems = required.flatMap((option) => {
    const [name, must] = option.split('=') as [string, string | undefined];
    const value = set.get(name);
    if (must ? value === must : value === 'y' || value === 'm') return [];
    return [`${name} is ${value === undefined ? 'not set' : value}, needs ${must ?? 'y or m'}`];
  });
  if (problems.length > 0) {
    throw new MemuError(
      `kernel ${kernelVersion} lacks what profile ${profile.name} needs: ${problems.join('; ')}`,
      ExitCode.badInput,
      `pin a kernel that has them in rootfs.kernel of hardware/profiles/${profile.name}.ts (not the 16K-page flavour: container images built with jemalloc need 4K pages)`,
    );
  }
}

/**
 * Every FAT partition of the layout gets exactly one tree from the backend, except those
 * the profile ships empty (boot B on a Pi), which stay holes in the image like root B.
 */
export function checkFatPartitions(profile: HardwareProfile, layout: DiskLayout, trees: FatPartitionTree[], backendName: string): void {
  const problems: string[] = [];
  for (const p of layout.partitions.filter((x) => x.filesystem === 'vfat')) {
    const shipsEmpty = profile.partitions.find((x) => x.role === p.role)?.shipsEmpty ?? false;
    const count = trees.filter((t) => t.role === p.role).length;
    if (!shipsEmpty && count !== 1) problems.push(`FAT partition ${p.role} got ${count} trees, needs 1`);
    if (shipsEmpty && count > 0) problems.push(`FAT partition ${p.role} ships empty but got a tree`);
  }
  for (const t of trees) {
    const p = layout.partitions.find((x) => x.role === t.role);
    if (!p || p.filesystem !== 'vfat') problems.push(`a tree for ${t.role}, which is not a FAT partition of this layout`);
  }
  if (problems.length) throw new Error(`boot backend ${backendName} does not fit the layout of ${profile.name}: ${problems.join('; ')}`);
}
