import { lstat, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BOOT_SLOTS,
  SYSTEMD_BOOT_FILES,
  systemdBootEntryName,
  systemdBootEntryText,
  type ArmedTrial,
  type BootSlot,
  type BootSlots,
  type BootSlotsStatus,
  type SlotStatus,
  type TrialRequest,
} from '../../shared/contracts/boot-slots.ts';
import { fsyncDirectory, removeStaleTemporaryFiles, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { BootSlotsError, checkTrialRequest, readRunningSlot } from './slot-rules.ts';
import { compareBootOrder, defaultPattern, nextBootEntry, readLoaderEntries, type LoaderEntry } from './loader-entries.ts';

export interface SystemdBootSlotsOptions {
  /** Where the ESP is mounted (the image's fstab: /boot/efi). */
  espDir?: string;
  /** The running kernel's command line. */
  cmdlinePath?: string;
}

/** More than this many failed boots of an update says enough. */
const MAX_TRIAL_ATTEMPTS = 5;
/**
 * Trial entries carry `sort-key memu-<n>` with n counting down from here, so each new
 * trial sorts before every earlier entry (sort keys compare as strings, ascending).
 */
const SORT_KEY_BASE = 99_999_999;
const SORT_KEY = /^memu-(\d{8})$/;

/**
 * The A/B slots on systemd-boot (x86-64), without EFI variables: the state lives in the
 * entries' file names and sort keys on the ESP (see shared/contracts/boot-slots.ts for
 * what the words mean). Each change is one crash-safe step on the FAT file system (new
 * file, fsync, rename, fsync the directory), ordered so that the loader boots a good slot
 * whatever step a power cut interrupts.
 *
 * Nothing calls this at run time yet: OS updates are to use it to try the slot they
 * filled and to commit it once the stack is healthy. markCurrentGood is the only thing
 * that blesses an entry: the image does not install systemd-bless-boot (Debian package
 * systemd-boot), which would bless it as soon as boot-complete.target is reached.
 */
export function createSystemdBootSlots(opts: SystemdBootSlotsOptions = {}): BootSlots {
  const espDir = opts.espDir ?? '/boot/efi';
  const cmdlinePath = opts.cmdlinePath ?? '/proc/cmdline';
  const entriesDir = join(espDir, SYSTEMD_BOOT_FILES.entriesDir);
  const loaderConfPath = join(espDir, SYSTEMD_BOOT_FILES.loaderConf);

  const currentSlot = () => readRunningSlot(cmdlinePath, 'a Memu boot entry');

  /** The entry of each slot that the loader would use: the first in boot order (an interrupted trial can leave two). */
  const entryOf = (entries: LoaderEntry[], slot: BootSlot) => entries.filter((e) => e.slot === slot).sort(compareBootOrder)[0];

  const slotStatus = (entry: LoaderEntry | undefined, slot: BootSlot): SlotStatus => {
    if (!entry) return { slot, state: 'absent' };
    if (!entry.counter) return { slot, state: 'good' };
    return { slot, state: entry.counter.left > 0 ? 'trial' : 'bad', attemptsLeft: entry.counter.left };
  };

  /** Removes the slot's entries other than `keep`, leftovers of an interrupted change. */
  const removeOtherEntries = async (entries: LoaderEntry[], slot: BootSlot, keep: string) => {
    const others = entries.filter((e) => e.slot === slot && e.fileName !== keep);
    for (const e of others) await rm(join(entriesDir, e.fileName), { force: true });
    if (others.length) await fsyncDirectory(entriesDir);
  };

  /** loader.conf's default must match every slot's entry for the order (and with it the fallback) to decide. */
  const defaultToEverySlot = async () => {
    const text = await readFile(loaderConfPath, 'utf8');
    if (defaultPattern(text) === SYSTEMD_BOOT_FILES.defaultPattern) return;
    const kept = text.split('\n').filter((l) => !/^\s*default\s/.test(l) && l !== '');
    await writeFileAtomic(loaderConfPath, [`default ${SYSTEMD_BOOT_FILES.defaultPattern}`, ...kept, ''].join('\n'));
  };

  /** Entries without a sort key (the one the image ships) are generation 0. */
  const generationOf = (e: LoaderEntry) => {
    const m = SORT_KEY.exec(e.sortKey ?? '');
    return m ? SORT_KEY_BASE - Number(m[1]) : 0;
  };
  const nextSortKey = (entries: LoaderEntry[]) => `memu-${String(SORT_KEY_BASE - (Math.max(0, ...entries.map(generationOf)) + 1)).padStart(8, '0')}`;

  const isFile = (path: string) => lstat(path).then((s) => s.isFile(), () => false);

  return {
    backend: 'systemd-boot',
    maxTrialAttempts: MAX_TRIAL_ATTEMPTS,

    async status(): Promise<BootSlotsStatus> {
      const current = await currentSlot();
      const entries = await readLoaderEntries(espDir);
      const loaderConf = await readFile(loaderConfPath, 'utf8');
      const slots = Object.fromEntries(BOOT_SLOTS.map((s) => [s, slotStatus(entryOf(entries, s), s)])) as Record<BootSlot, SlotStatus>;
      return { current, nextBoot: nextBootEntry(entries, defaultPattern(loaderConf))?.slot, slots };
    },

    async armTrial(slot: BootSlot, request: TrialRequest): Promise<ArmedTrial> {
      checkTrialRequest(slot, await currentSlot(), request, MAX_TRIAL_ATTEMPTS);
      for (const file of [SYSTEMD_BOOT_FILES.kernel(slot), SYSTEMD_BOOT_FILES.initrd(slot)]) {
        // systemd-boot silently skips an entry whose kernel is missing, which would make the trial a no-op.
        if (!(await isFile(join(espDir, file)))) throw new BootSlotsError(`slot ${slot} has no /${file} on the ESP; install its boot files before arming a trial`);
      }
      await removeStaleTemporaryFiles(entriesDir);
      await removeStaleTemporaryFiles(join(espDir, 'loader'), { only: ['loader.conf'] });
      await defaultToEverySlot();
      const entries = await readLoaderEntries(espDir);
      const fileName = systemdBootEntryName(slot, { left: request.attempts });
      // The new entry sorts first the moment its name appears: that rename is the commit.
      await writeFileAtomic(join(entriesDir, fileName), systemdBootEntryText({ slot, kernelVersion: request.kernelVersion, kernelCmdline: request.kernelCmdline, sortKey: nextSortKey(entries) }));
      await removeOtherEntries(await readLoaderEntries(espDir), slot, fileName);
      return { slot, attempts: request.attempts };
    },

    async markCurrentGood(): Promise<SlotStatus> {
      const slot = await currentSlot();
      const entries = await readLoaderEntries(espDir);
      const entry = entryOf(entries, slot);
      if (!entry) throw new BootSlotsError(`the running slot ${slot} has no loader entry in ${entriesDir}`);
      const good = systemdBootEntryName(slot);
      if (entry.counter) {
        await rename(join(entriesDir, entry.fileName), join(entriesDir, good));
        await fsyncDirectory(entriesDir);
      }
      await removeOtherEntries(await readLoaderEntries(espDir), slot, good);
      return { slot, state: 'good' };
    },
  };
}
