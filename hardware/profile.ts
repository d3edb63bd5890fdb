import { z } from 'zod';
import { describeInvalid } from '../shared/errors.ts';

/**
 * A hardware profile: everything the build, the flasher, the VM runner and the agent
 * need to know about one target. Profiles are plain data, validated when loaded, so a
 * typo in a profile is a clear error before any work starts.
 */

const MiB = z.number().int().positive();

/** GPT partition type GUIDs (Discoverable Partitions Specification where one fits). */
export const PartitionType = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  /** Microsoft basic data: what the Pi firmware expects for FAT boot partitions. */
  fatData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  rootX86_64: '4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709',
  rootArm64: 'B921B045-1DF0-41C3-AF44-4C6F280D3FAE',
  /** Generic Linux data: deliberately not the DPS /var type, so nothing auto-mounts it. */
  linuxData: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export const partitionRoleSchema = z.enum(['esp', 'bootconfig', 'boot-a', 'boot-b', 'root-a', 'root-b', 'data']);
export type PartitionRole = z.infer<typeof partitionRoleSchema>;

export const partitionSchema = z
  .object({
    role: partitionRoleSchema,
    /** GPT partition name (PARTLABEL); the device finds its partitions by these. */
    label: z.string().regex(/^[a-z0-9-]{1,36}$/),
    filesystem: z.enum(['vfat', 'ext4']),
    /** Size in MiB as shipped; the data partition grows to fill the drive on first boot. */
    sizeMiB: MiB,
    /** Root B and boot B ship empty (holes in the sparse image) until an update fills them. */
    shipsEmpty: z.boolean().default(false),
  })
  .strict();
export type PartitionSpec = z.infer<typeof partitionSchema>;

const aptSourceSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/),
    uri: z.string().url(),
    suites: z.array(z.string()).min(1),
    components: z.array(z.string()).min(1),
    /** Path of an OpenPGP keyring (relative to the repository root) that signs this archive. */
    keyring: z.string().optional(),
  })
  .strict();
export type AptSource = z.infer<typeof aptSourceSchema>;

const uefiFirmwareSchema = z
  .object({
    kind: z.literal('uefi'),
    /** Name of the removable-media boot path binary on the ESP (EFI/BOOT/...). */
    efiBootFile: z.enum(['BOOTX64.EFI', 'BOOTAA64.EFI']),
    /** systemd-boot binary inside the root filesystem, copied to the ESP. */
    systemdBootBinary: z.string(),
    kernelCmdline: z.array(z.string()),
  })
  .strict();

const raspberryPiFirmwareSchema = z
  .object({
    kind: z.literal('raspberrypi'),
    /** Lines of config.txt; `kernel=kernel8.img` keeps 4K pages for jemalloc-based images. */
    configTxt: z.array(z.string()),
    kernelCmdline: z.array(z.string()),
    eeprom: z.object({ bootOrder: z.string().regex(/^0x[0-9a-f]+$/), minimumBootloaderDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }).strict(),
    /**
     * Every file the firmware loads from a boot partition must be smaller than this: the
     * oldest bootloader a board may arrive with cannot read larger files from the boot drive.
     */
    bootFileLimitBytes: z.number().int().positive(),
  })
  .strict();

/**
 * The kernel, named by its exact package and version rather than a meta-package that moves
 * with the archive: the build installs exactly this, refuses before any long work when the
 * archive no longer has it, and checks the built kernel's configuration.
 */
const kernelPinSchema = z
  .object({
    /** The versioned image package (`linux-image-<abi>-<flavour>`), never a meta-package. */
    package: z.string().regex(/^linux-image-\d[a-z0-9.+~-]*$/),
    version: z.string().min(1),
    /** The suite that has it: rootfs.suite or a suite of one of rootfs.extraAptSources. */
    suite: z.string(),
    /** The meta-package that follows the newest kernel of this flavour in that suite; names the current one when the pin is gone. */
    metaPackage: z.string().regex(/^linux-image-[a-z0-9-]+$/),
    /** Packages the kernel needs in the suite's newer version (installed as `name/suite`), such as linux-base. */
    fromSuite: z.array(z.string()).default([]),
    /** Options the kernel must have built in or as modules (`=y` or `=m` in /boot/config-<release>). */
    requiredConfig: z.array(z.string().regex(/^CONFIG_[A-Z0-9_]+(=y)?$/)).default([]),
  })
  .strict();
export type KernelPin = z.infer<typeof kernelPinSchema>;

const vmSchema = z
  .object({
    qemuBinary: z.string(),
    machine: z.string(),
    cpu: z.string(),
    firmwareCode: z.string(),
    firmwareVarsTemplate: z.string(),
    diskInterface: z.enum(['virtio', 'nvme']),
    /** QEMU's emulated hardware watchdog, which systemd's RuntimeWatchdogSec drives; it resets the VM when not fed. */
    watchdogDevice: z.string().optional(),
  })
  .strict();

/** A regular expression as text; refused here when it does not compile, so QA never meets a broken one on the bench. */
const patternSchema = z.string().refine((text) => {
  try {
    new RegExp(text);
    return true;
  } catch {
    return false;
  }
}, 'is not a valid regular expression');

/**
 * What factory QA holds each unit of this target to (agent/factory-qa). Units are in the
 * names; the numbers come from the boards' data sheets until `memu qa thresholds` suggests
 * better ones from real units' reports.
 */
const qaThresholdsSchema = z
  .object({
    minMemoryMiB: z.number().int().positive(),
    /** How much memory memtester tests in one pass; 0 skips the test. */
    memoryTestMiB: z.number().int().nonnegative(),
    minCpuCores: z.number().int().positive(),
    /** The CPU model (`model name`, or the Arm core's name, e.g. "Cortex-A76") must match; absent: any. */
    cpuModelPattern: patternSchema.optional(),
    /** The board's model string (device tree `model`, or DMI vendor and product) must match. */
    boardModelPattern: patternSchema,
    /**
     * The board must report a temperature (a thermal zone). Virtual machines have none: there
     * the temperature checks are skipped, and the load still runs.
     */
    thermalSensorRequired: z.boolean(),
    maxIdleTemperatureC: z.number().positive(),
    /** The temperature allowed after `stressSeconds` of full load on every core (`stress`). */
    maxLoadTemperatureC: z.number().positive(),
    stressSeconds: z.number().int().positive(),
    /** Fails a unit without an NVMe drive. */
    nvmeRequired: z.boolean(),
    /** The PCIe link the NVMe drive must train to: GT/s per lane (2.5 Gen 1, 5.0 Gen 2, 8.0 Gen 3) and lanes; 0 skips. */
    minPcieGTps: z.number().nonnegative(),
    minPcieLinkWidth: z.number().int().nonnegative(),
    /** A new drive has used almost none of its rated life (SMART "percentage used"); more means a used or faulty drive. */
    maxNvmePercentUsed: z.number().nonnegative().max(100),
    /** The scratch file fio writes and reads back on the data partition: long enough for a drive's cache not to flatter the write. */
    diskTestMiB: z.number().int().positive(),
    minDiskWriteMBps: z.number().positive(),
    minDiskReadMBps: z.number().positive(),
    /** The SKU under test has the NPU fitted (features.npu only says one is optional). */
    npuRequired: z.boolean(),
    /** 0: a link is enough (virtual NICs report no speed). */
    minEthernetMbps: z.number().int().nonnegative(),
    /** Networks a Wi-Fi scan must see where the target has Wi-Fi. */
    minWifiNetworks: z.number().int().nonnegative(),
    watchdogRequired: z.boolean(),
    /** Warm reboots in a row the factory QA run must survive (Pi 5 NVMe lesson). */
    rebootCycles: z.number().int().nonnegative(),
    /** Each of those reboots must reach QA within this many seconds of the kernel starting. */
    maxBootSeconds: z.number().positive(),
  })
  .strict();

export const profileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]+$/),
    description: z.string(),
    arch: z.enum(['amd64', 'arm64']),
    /** Test targets are for CI and demos, never shipped. */
    kind: z.enum(['product', 'test']),
    firmware: z.discriminatedUnion('kind', [uefiFirmwareSchema, raspberryPiFirmwareSchema]),
    partitions: z.array(partitionSchema).min(2),
    rootfs: z
      .object({
        suite: z.string(),
        mirror: z.string().url(),
        /** Archive components; non-free-firmware carries most Wi-Fi/NIC/GPU firmware. */
        components: z.array(z.string()).min(1),
        /** Packages this target adds to the common base set (kernel, firmware, bootloader). */
        packages: z.array(z.string()),
        extraAptSources: z.array(aptSourceSchema),
        /** The kernel pinned by version; without it, a kernel package in `packages` takes the suite's current one. */
        kernel: kernelPinSchema.optional(),
      })
      .strict(),
    features: z.object({ npu: z.enum(['none', 'hailo-optional']), wifi: z.boolean() }).strict(),
    qa: qaThresholdsSchema,
    vm: vmSchema.optional(),
  })
  .strict()
  .superRefine((p, ctx) => {
    const roles = p.partitions.map((x) => x.role);
    const need: PartitionRole[] =
      p.firmware.kind === 'uefi' ? ['esp', 'root-a', 'root-b', 'data'] : ['bootconfig', 'boot-a', 'boot-b', 'root-a', 'root-b', 'data'];
    if (roles.join(',') !== need.join(',')) {
      ctx.addIssue({ code: 'custom', path: ['partitions'], message: `a ${p.firmware.kind} target needs exactly these partitions in this order: ${need.join(', ')} (got ${roles.join(', ')})` });
    }
    const labels = new Set(p.partitions.map((x) => x.label));
    if (labels.size !== p.partitions.length) ctx.addIssue({ code: 'custom', path: ['partitions'], message: 'partition labels must be unique' });
    const kernel = p.rootfs.kernel;
    if (kernel) {
      const suites = [p.rootfs.suite, ...p.rootfs.extraAptSources.flatMap((s) => s.suites)];
      if (!suites.includes(kernel.suite)) ctx.addIssue({ code: 'custom', path: ['rootfs', 'kernel', 'suite'], message: `${kernel.suite} is not a suite of this profile's apt sources (${suites.join(', ')})` });
      const other = p.rootfs.packages.filter((name) => name.startsWith('linux-image-'));
      if (other.length > 0) ctx.addIssue({ code: 'custom', path: ['rootfs', 'packages'], message: `rootfs.kernel pins the kernel; remove the other kernel packages (${other.join(', ')})` });
    }
    if (p.firmware.kind === 'uefi' && (p.arch === 'amd64') !== (p.firmware.efiBootFile === 'BOOTX64.EFI')) {
      ctx.addIssue({ code: 'custom', path: ['firmware', 'efiBootFile'], message: `${p.firmware.efiBootFile} does not match arch ${p.arch}` });
    }
  });

export type HardwareProfile = z.infer<typeof profileSchema>;
export type ProfileInput = z.input<typeof profileSchema>;

export function platformOf(profile: Pick<HardwareProfile, 'arch'>): 'linux/amd64' | 'linux/arm64' {
  return profile.arch === 'amd64' ? 'linux/amd64' : 'linux/arm64';
}

export class ProfileError extends Error {}

/** Validates profile data; the error lists every problem with its path. */
export function validateProfile(data: unknown, source: string): HardwareProfile {
  const result = profileSchema.safeParse(data);
  if (result.success) return result.data;
  throw new ProfileError(describeInvalid(`hardware profile ${source}`, result.error.issues));
}
