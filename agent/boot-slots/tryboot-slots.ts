import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BOOT_SLOTS,
  otherSlot,
  type ArmedTrial,
  type BootSlot,
  type BootSlots,
  type BootSlotsStatus,
  type SlotStatus,
  type TrialRequest,
} from '../../shared/contracts/boot-slots.ts';
import { DISK_LAYOUT_PATH } from '../../shared/contracts/disk-layout.ts';
import { removeStaleTemporaryFiles, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { layoutPartition, loadDiskLayout } from '../storage/index.ts';
import {
  AUTOBOOT_TXT_MAX_BYTES,
  appliedSetting,
  parseAutobootTxt,
  partitionNumber,
  renderAutobootTxt,
  setBootPartition,
  setSectionSetting,
  type AutobootTxt,
} from '../../shared/contracts/autoboot-txt.ts';
import { BootSlotsError, checkTrialRequest, readRunningSlot } from './slot-rules.ts';

/** Reboots the device with the Pi firmware's one-shot tryboot flag set, as `reboot '0 tryboot'` does on the Raspberry Pi kernel. */
export interface TrybootReboot {
  /**
   * Only a kernel that hands the reboot argument to the firmware can set the flag: the
   * Raspberry Pi kernel does, Debian's kernel does not, so on Debian's kernel the agent
   * cannot set it yet (issue 14). An implementation must then reject, never reboot
   * without the flag: a plain reboot starts the committed slot and spends the trial.
   */
  requestTrybootReboot(): Promise<void>;
}

/** The only TrybootReboot there is so far: on Debian's kernel nothing can set the flag. */
export const trybootRebootUnavailable: TrybootReboot = {
  async requestTrybootReboot() {
    throw new BootSlotsError(
      "cannot reboot into the trial: Debian's kernel does not pass the tryboot flag to the Raspberry Pi firmware (issue 14), and a plain reboot would start the committed slot and spend the trial",
    );
  },
};

export interface TrybootBootSlotsOptions {
  /** Where the bootconfig partition (the first FAT partition, holding autoboot.txt) is mounted. */
  bootconfigDir: string;
  /** The running kernel's command line. */
  cmdlinePath?: string;
  /** This boot's id: it tells the boot that armed a trial from the boots after it. */
  bootIdPath?: string;
  /** The disk layout, for the partition numbers of boot-a and boot-b. */
  layoutPath?: string;
  trybootReboot?: TrybootReboot;
}

export interface TrybootBootSlots extends BootSlots {
  /** Reboots into the trial armed in this boot, through TrybootReboot (which Debian's kernel cannot do yet). */
  rebootIntoTrial(): Promise<void>;
}

const TRYBOOT_REBOOT_ARGUMENT = '0 tryboot';

/**
 * The comment that records which boot armed a trial. The firmware writes nothing when it
 * boots the trial, so only the boot id says whether the one try is still ahead (same
 * boot) or spent (any later boot). Comments are ignored by the firmware.
 */
const TRIAL_MARK = /^#\s*memu-trial slot=([ab]) armed-in-boot=(\S+)\s*$/;

interface TrialMark {
  slot: BootSlot;
  bootId: string;
}

function trialMark(doc: AutobootTxt): TrialMark | undefined {
  let mark: TrialMark | undefined;
  for (const line of doc.lines) {
    const m = line.kind === 'comment' ? TRIAL_MARK.exec(line.text.trim()) : null;
    if (m) mark = { slot: m[1] as BootSlot, bootId: m[2]! };
  }
  return mark;
}

function withoutTrialMark(doc: AutobootTxt): AutobootTxt {
  return { ...doc, lines: doc.lines.filter((l) => !(l.kind === 'comment' && TRIAL_MARK.test(l.text.trim()))) };
}

/** Puts the mark right after the `boot_partition` the tryboot flag applies. */
function withTrialMark(doc: AutobootTxt, mark: TrialMark): AutobootTxt {
  const at = appliedSetting(doc, 'boot_partition', { tryboot: true })!.line;
  const lines = [...doc.lines];
  lines.splice(at, 0, { kind: 'comment', text: `# memu-trial slot=${mark.slot} armed-in-boot=${mark.bootId}` });
  return { ...doc, lines };
}

/**
 * The A/B slots on the Raspberry Pi 5's tryboot (see shared/contracts/boot-slots.ts for the
 * words). Everything lives in autoboot.txt on the bootconfig partition, rewritten whole and
 * crash-safe (new file, fsync, rename, fsync the directory), so a power cut leaves the old
 * file or the new one:
 *
 * - next boot: the slot whose boot partition `boot_partition` names for a normal boot;
 * - a trial: `[tryboot] boot_partition=` names the other slot, with a mark of the boot that
 *   armed it; without a mark that slot is the previous good one, kept there by the last
 *   commit as in Raspberry Pi's own example (reachable only with the flag);
 * - mark good: the running trial becomes `[all]`, the previous slot moves to `[tryboot]`.
 *
 * Which scheme: `[tryboot] boot_partition=` together with `tryboot_a_b=1`. Raspberry Pi
 * documents tryboot_a_b as choosing only the file read with the flag (config.txt instead
 * of tryboot.txt), not the partition, so it cannot replace the `[tryboot]` section; with
 * it each boot partition carries one config.txt whichever way it is started.
 *
 * This backend sees only the bootconfig partition: filling and checking the slot's boot
 * partition (its kernel, config.txt, cmdline.txt with memu.slot=) is the caller's part.
 */
export function createTrybootBootSlots(opts: TrybootBootSlotsOptions): TrybootBootSlots {
  const autobootPath = join(opts.bootconfigDir, 'autoboot.txt');
  const cmdlinePath = opts.cmdlinePath ?? '/proc/cmdline';
  const bootIdPath = opts.bootIdPath ?? '/proc/sys/kernel/random/boot_id';
  const layoutPath = opts.layoutPath ?? DISK_LAYOUT_PATH;
  const trybootReboot = opts.trybootReboot ?? trybootRebootUnavailable;

  const currentSlot = () => readRunningSlot(cmdlinePath, 'a Memu boot partition');
  const currentBootId = async () => (await readFile(bootIdPath, 'utf8')).trim();

  const bootPartitions = async (): Promise<Record<BootSlot, number>> => {
    const layout = await loadDiskLayout(layoutPath);
    return { a: layoutPartition(layout, 'boot-a').number, b: layoutPartition(layout, 'boot-b').number };
  };

  /** The slot each kind of boot starts, from autoboot.txt as it is now. */
  const readAutoboot = async () => {
    const partitions = await bootPartitions();
    const doc = parseAutobootTxt(await readFile(autobootPath, 'utf8'));
    const bootedPartition = (tryboot: boolean) => partitionNumber(appliedSetting(doc, 'boot_partition', { tryboot }));
    const slotOf = (partition: number | undefined) => BOOT_SLOTS.find((s) => partitions[s] === partition);
    const normal = slotOf(bootedPartition(false));
    if (!normal) {
      throw new BootSlotsError(
        `${autobootPath} starts partition ${bootedPartition(false) ?? '(none named)'} on a normal boot, which is neither slot's boot partition (a: ${partitions.a}, b: ${partitions.b})`,
      );
    }
    const tried = slotOf(bootedPartition(true));
    return { doc, partitions, normal, trial: tried === normal ? undefined : tried, mark: trialMark(doc) };
  };

  const write = async (doc: AutobootTxt) => {
    const text = renderAutobootTxt(doc);
    const bytes = Buffer.byteLength(text);
    if (bytes > AUTOBOOT_TXT_MAX_BYTES) throw new BootSlotsError(`${autobootPath} would be ${bytes} bytes; the firmware reads at most ${AUTOBOOT_TXT_MAX_BYTES}`);
    await removeStaleTemporaryFiles(opts.bootconfigDir, { only: ['autoboot.txt'] });
    await writeFileAtomic(autobootPath, text);
  };

  /** Refuses a rewrite whose settings another line overrides, which would arm or commit nothing. */
  const expectApplied = (doc: AutobootTxt, key: string, tryboot: boolean, value: string) => {
    const applied = appliedSetting(doc, key, { tryboot });
    if (applied?.value !== value) {
      throw new BootSlotsError(`${autobootPath}: ${key}=${value} would not apply on a ${tryboot ? 'tryboot' : 'normal'} boot (line ${applied?.line} wins); fix the file by hand`);
    }
  };

  const status = async (): Promise<BootSlotsStatus> => {
    const current = await currentSlot();
    const { normal, trial, mark } = await readAutoboot();
    const other = otherSlot(normal);
    const otherStatus = async (): Promise<SlotStatus> => {
      if (trial !== other) return { slot: other, state: 'absent' };
      if (mark?.slot !== other) return { slot: other, state: 'good' };
      if (mark.bootId === (await currentBootId())) return { slot: other, state: 'trial', attemptsLeft: 1 };
      // Running the trial: no reset will start it again, but it can still be marked good.
      if (current === other) return { slot: other, state: 'trial', attemptsLeft: 0 };
      return { slot: other, state: 'bad', attemptsLeft: 0 };
    };
    const slots = { [normal]: { slot: normal, state: 'good' }, [other]: await otherStatus() } as Record<BootSlot, SlotStatus>;
    return { current, nextBoot: normal, slots };
  };

  return {
    backend: 'tryboot',
    maxTrialAttempts: 1,
    status,

    async armTrial(slot: BootSlot, request: TrialRequest): Promise<ArmedTrial> {
      const current = await currentSlot();
      // tryboot starts a trial exactly once.
      checkTrialRequest(slot, current, request, 1);
      const { doc, partitions, normal } = await readAutoboot();
      if (normal !== current) throw new BootSlotsError(`the running slot ${current} is itself on trial (a normal boot starts slot ${normal}); mark it good before arming another trial`);
      let next = setBootPartition(withoutTrialMark(doc), 'tryboot', partitions[slot]);
      if (appliedSetting(next, 'tryboot_a_b', { tryboot: true })?.value !== '1') next = setSectionSetting(next, 'all', 'tryboot_a_b', '1');
      expectApplied(next, 'boot_partition', true, String(partitions[slot]));
      expectApplied(next, 'tryboot_a_b', true, '1');
      await write(withTrialMark(next, { slot, bootId: await currentBootId() }));
      return { slot, attempts: 1, rebootArgument: TRYBOOT_REBOOT_ARGUMENT };
    },

    async markCurrentGood(): Promise<SlotStatus> {
      const current = await currentSlot();
      const { doc, partitions, normal, trial, mark } = await readAutoboot();
      if (normal === current) return { slot: current, state: 'good' };
      // A slot started with the flag but never armed (a stray tryboot reboot into the previous slot) must not undo the last commit.
      if (trial !== current || mark?.slot !== current) {
        throw new BootSlotsError(`the running slot ${current} was not started as an armed trial (a normal boot starts slot ${normal}); refusing to commit it`);
      }
      let next = setBootPartition(withoutTrialMark(doc), 'all', partitions[current]);
      next = setBootPartition(next, 'tryboot', partitions[normal]);
      expectApplied(next, 'boot_partition', false, String(partitions[current]));
      await write(next);
      return { slot: current, state: 'good' };
    },

    async rebootIntoTrial(): Promise<void> {
      const { slots } = await status();
      if (!BOOT_SLOTS.some((s) => slots[s].state === 'trial' && slots[s].attemptsLeft === 1)) {
        throw new BootSlotsError('no trial was armed in this boot; arm one before rebooting into it');
      }
      await trybootReboot.requestTrybootReboot();
    },
  };
}
