/**
 * A/B boot slots: what the image builds and what the device switches between. Every
 * Memu disk has two slots, `a` and `b`, each a root filesystem (root-a, root-b) plus what
 * the firmware needs to start it (kernel and initrd on the ESP, or a Pi boot partition).
 * The image ships slot `a` bootable and slot `b` empty; an update fills the idle slot,
 * tries it, and keeps it only once it proved itself.
 *
 * The words, for every boot backend:
 *
 * - **current**: the slot the running system booted from. The kernel command line of
 *   every slot carries `memu.slot=<slot>`, so `/proc/cmdline` answers it.
 * - **next boot**: the slot the firmware or boot loader will start on the next reset,
 *   from what is stored on the FAT partitions now.
 * - **trial** ("try once" when attempts is 1): the next boots start a slot at most N
 *   times (N = attempts) without committing to it; when no attempt reaches "mark good",
 *   the loader falls back to the last good slot by itself, with nobody's help.
 * - **mark good**: the running slot proved itself (the core stack is healthy); from now
 *   on it boots without counting, and it is what the loader falls back to.
 * - **boot attempts left**: how many more times the loader will start a slot on trial
 *   before it gives up on it (0: the slot is bad and skipped).
 *
 * systemd-boot (x86-64, `agent/boot-slots/`): each slot is a Boot Loader Specification
 * entry on the ESP, `loader/entries/memu-<slot>.conf`. A trial renames it with a boot
 * counter, `memu-b+3.conf`; systemd-boot turns that into `memu-b+2-1.conf` before each
 * attempt and prefers entries with tries left; marking good drops the counter. Which
 * entry boots first is decided by `sort-key`, written into each trial entry (newer trials
 * sort first), with `default memu-*.conf` in loader.conf so that a bad entry, sorted last,
 * makes the loader fall back. No EFI variable is needed (LoaderEntryOneShot would be one).
 *
 * tryboot (Raspberry Pi 5), the same words: current is `memu.slot=` too (each boot
 * partition's cmdline.txt carries its slot); next boot is `boot_partition=` in the
 * `[all]` section of `autoboot.txt` on the bootconfig partition, unless a tryboot reboot
 * is pending; a trial writes `[tryboot] boot_partition=<the slot's boot partition>` and
 * asks the caller to reboot with `reboot '0 tryboot'`: the firmware starts that
 * partition exactly once, and any later reset starts `[all]` again, so attempts is always
 * 1 there (maxTrialAttempts); mark good rewrites `[all] boot_partition=` to the current
 * slot's partition (new file, fsync, rename). Attempts left is 1 while the trial is
 * armed and 0 once it was booted without being marked good.
 */

export const BOOT_SLOTS = ['a', 'b'] as const;
export type BootSlot = (typeof BOOT_SLOTS)[number];

/** The kernel command-line parameter naming the slot a kernel was started for. */
export const SLOT_KERNEL_PARAMETER = 'memu.slot';

export function otherSlot(slot: BootSlot): BootSlot {
  return slot === 'a' ? 'b' : 'a';
}

export function isBootSlot(value: string): value is BootSlot {
  return (BOOT_SLOTS as readonly string[]).includes(value);
}

/** The slot named by `memu.slot=` on a kernel command line (the last one wins, as for the kernel), if any. */
export function slotFromKernelCmdline(cmdline: string): BootSlot | undefined {
  let slot: BootSlot | undefined;
  for (const word of cmdline.trim().split(/\s+/)) {
    const [key, value = ''] = word.split('=', 2);
    if (key === SLOT_KERNEL_PARAMETER && isBootSlot(value)) slot = value;
  }
  return slot;
}

/**
 * One slot as the loader sees it: `good` boots without counting; `trial` is armed with
 * attempts left; `bad` used up its attempts and is skipped; `absent` has nothing to boot.
 */
export type SlotState = 'good' | 'trial' | 'bad' | 'absent';

export interface SlotStatus {
  slot: BootSlot;
  state: SlotState;
  /**
   * Boot attempts left: set for `trial` and `bad` (0) only. A trial has at least 1 until it
   * runs; a one-shot trial (tryboot) that is running has 0: no reset starts it again.
   */
  attemptsLeft?: number;
}

export interface BootSlotsStatus {
  current: BootSlot;
  /** Undefined when nothing bootable is left (which a working device never shows). */
  nextBoot: BootSlot | undefined;
  slots: Record<BootSlot, SlotStatus>;
}

/** What a slot boots with: its kernel's version and command line (from the update that filled it). */
export interface TrialRequest {
  /** How many boots may try the slot before the loader falls back (1 = try once). */
  attempts: number;
  kernelVersion: string;
  /** Must name the slot's root and carry `memu.slot=<slot>`. */
  kernelCmdline: string;
}

export interface ArmedTrial {
  slot: BootSlot;
  attempts: number;
  /** The argument `reboot` needs to start the trial (`0 tryboot` on a Pi); undefined: a plain reboot. */
  rebootArgument?: string;
}

/** One boot backend's handling of the slots; every write to a FAT partition is crash-safe. */
export interface BootSlots {
  readonly backend: 'systemd-boot' | 'tryboot';
  /** The most attempts a trial can have (1 for tryboot). */
  readonly maxTrialAttempts: number;
  status(): Promise<BootSlotsStatus>;
  /** Arms a trial of the idle slot, whose boot files the caller has put in place. */
  armTrial(slot: BootSlot, request: TrialRequest): Promise<ArmedTrial>;
  /** Commits the running slot: it boots without counting from now on. */
  markCurrentGood(): Promise<SlotStatus>;
}

/**
 * Where systemd-boot's side of the slots lives on the ESP, relative to its root. The
 * image writes these files, the device reads and renames them.
 */
export const SYSTEMD_BOOT_FILES = {
  loaderConf: 'loader/loader.conf',
  entriesDir: 'loader/entries',
  /** The pattern loader.conf's `default` has once a trial was armed: every slot's entry, the order decides. */
  defaultPattern: 'memu-*.conf',
  kernel: (slot: BootSlot) => `memu/${slot}/vmlinuz`,
  initrd: (slot: BootSlot) => `memu/${slot}/initrd.img`,
} as const;

/** The entry's file name: `memu-b.conf`, or with a boot counter `memu-b+3.conf`, `memu-b+2-1.conf`. */
export function systemdBootEntryName(slot: BootSlot, counter?: { left: number; done?: number }): string {
  if (!counter) return `memu-${slot}.conf`;
  return `memu-${slot}+${counter.left}${counter.done ? `-${counter.done}` : ''}.conf`;
}

/** A Boot Loader Specification entry for a slot; the root is named by the command line. */
export function systemdBootEntryText(entry: { slot: BootSlot; kernelVersion: string; kernelCmdline: string; sortKey?: string }): string {
  return [
    `title Memu OS (slot ${entry.slot.toUpperCase()})`,
    ...(entry.sortKey ? [`sort-key ${entry.sortKey}`] : []),
    `version ${entry.kernelVersion}`,
    `linux /${SYSTEMD_BOOT_FILES.kernel(entry.slot)}`,
    `initrd /${SYSTEMD_BOOT_FILES.initrd(entry.slot)}`,
    `options ${entry.kernelCmdline}`,
    '',
  ].join('\n');
}

/**
 * The Raspberry Pi's side of the slots. The bootconfig partition (the first) holds
 * `autoboot.txt`; each slot's boot partition holds the firmware's `config.txt`, which names
 * the kernel and initrd, and `cmdline.txt`, with the device trees beside them. The image
 * writes slot A's files, an update writes the idle slot's the same way.
 */
export const RASPBERRY_PI_BOOT_FILES = {
  autobootTxt: 'autoboot.txt',
  configTxt: 'config.txt',
  cmdlineTxt: 'cmdline.txt',
  kernel: 'vmlinuz',
  initrd: 'initrd.img',
} as const;

/**
 * Where a Pi image mounts its FAT partitions (its fstab): the bootconfig partition, and
 * the boot partition of the slot the root filesystem belongs to, at Debian's usual place
 * for the Pi's firmware partition.
 */
export const RASPBERRY_PI_MOUNT_POINTS = {
  bootconfig: '/boot/bootconfig',
  slotBoot: '/boot/firmware',
} as const;
