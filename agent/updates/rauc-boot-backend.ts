import { isBootSlot, RASPBERRY_PI_MOUNT_POINTS, type BootSlot, type BootSlots } from '../../shared/contracts/boot-slots.ts';
import { DISK_LAYOUT_PATH } from '../../shared/contracts/disk-layout.ts';
import { createSystemdBootSlots, createTrybootBootSlots } from '../boot-slots/index.ts';
import { loadDiskLayout } from '../storage/index.ts';
import { bootPartitionSlotBootFiles, espSlotBootFiles, type PartitionDevice, type SlotBootFiles } from './slot-boot-files.ts';

/**
 * RAUC's boot loader backend (`bootloader=custom`, `bootloader-custom-backend=` in
 * /etc/rauc/system.conf, which runs /usr/lib/memu/rauc-boot-backend, which runs
 * `memu-agent rauc-boot-backend ARGS`), answered from the agent's BootSlots so that
 * systemd-boot counting and the Pi's tryboot stay in one place.
 *
 * The contract is RAUC's "Custom bootloader backend interface" (RAUC documentation,
 * Integration, "Custom"): RAUC runs the handler with `get-primary`, `set-primary <bootname>`,
 * `get-state <bootname>`, `set-state <bootname> good|bad` and (only when /proc/cmdline does
 * not tell it) `get-current`; a get prints its answer on stdout, every call exits 0 on
 * success and non-zero on failure. RAUC reads stdout only and leaves stderr to its own
 * (the journal of rauc.service), which is where the reason goes. Bootnames are the slots'
 * `bootname=`, `a` and `b`, what `memu.slot=` names.
 *
 * What each call does here:
 *   get-primary            the slot the loader starts next (BootSlots.status().nextBoot)
 *   set-primary <slot>     the idle slot: its boot files into place, then a trial of it
 *                          (RAUC calls this once the slot is written); the running slot:
 *                          nothing, it is already what the loader falls back to
 *   get-state <slot>       `good` for a good slot or an armed trial, `bad` for a bad or
 *                          absent one
 *   set-state <slot> good  the running slot: markCurrentGood() (`rauc status mark-good`,
 *                          which the agent runs once the stack is healthy); refused for the
 *                          idle slot, which can only prove itself by running
 *   set-state <slot> bad   nothing: RAUC calls it before writing the idle slot, which is
 *                          then not first in boot order, and the loader already skips a
 *                          slot whose attempts are used up
 *   get-current            the running slot (memu.slot= on the kernel command line)
 *
 * RAUC 1.13 makes two calls per install (set-state bad before writing, set-primary after),
 * one per mark-good and three per `rauc status`; each loads the agent's whole bundle.
 */
export interface RaucBootBackendDeps {
  bootSlots: BootSlots;
  slotBootFiles: SlotBootFiles;
  /** How many boots may try a new slot; capped at what the loader can count (1 for tryboot). */
  trialAttempts?: number;
}

export interface RaucBootBackendAnswer {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * A trial gets three boots on systemd-boot: one failed boot can be the power, not the
 * release (a cut during the first boot), and every attempt left is minutes of a family
 * waiting on a box that does not come up.
 */
export const DEFAULT_TRIAL_ATTEMPTS = 3;

const USAGE = 'commands (from RAUC): get-primary, set-primary <a|b>, get-state <a|b>, set-state <a|b> <good|bad>, get-current';
/** Exit codes: 1 a call that failed, 2 a call this backend does not understand (both non-zero, as RAUC needs). */
const FAILED = 1;
const MISUSED = 2;

class MisuseError extends Error {}

function slotArgument(value: string | undefined, command: string): BootSlot {
  if (value === undefined) throw new MisuseError(`${command} needs a slot's bootname (a or b)`);
  if (!isBootSlot(value)) throw new MisuseError(`${command}: "${value}" is not a slot's bootname; system.conf names them a and b`);
  return value;
}

/** One call from RAUC, answered as RAUC reads it; never throws. */
export async function answerRaucBootBackend(args: readonly string[], deps: RaucBootBackendDeps): Promise<RaucBootBackendAnswer> {
  const [command, ...rest] = args;
  const answer = (word: string): RaucBootBackendAnswer => ({ exitCode: 0, stdout: `${word}\n`, stderr: '' });
  const done: RaucBootBackendAnswer = { exitCode: 0, stdout: '', stderr: '' };
  const expectArguments = (count: number) => {
    if (rest.length > count) throw new MisuseError(`${command} takes ${count} argument${count === 1 ? '' : 's'}, got ${rest.length}: ${rest.join(' ')}`);
  };
  try {
    switch (command) {
      case 'get-primary': {
        expectArguments(0);
        const { nextBoot } = await deps.bootSlots.status();
        if (!nextBoot) throw new Error('no slot is bootable: the loader has nothing to start on the next reset');
        return answer(nextBoot);
      }
      case 'get-current': {
        expectArguments(0);
        return answer((await deps.bootSlots.status()).current);
      }
      case 'get-state': {
        expectArguments(1);
        const slot = slotArgument(rest[0], command);
        const { state } = (await deps.bootSlots.status()).slots[slot];
        return answer(state === 'good' || state === 'trial' ? 'good' : 'bad');
      }
      case 'set-primary': {
        expectArguments(1);
        const slot = slotArgument(rest[0], command);
        const { current } = await deps.bootSlots.status();
        if (slot === current) return done;
        const boot = await deps.slotBootFiles.install(slot);
        const attempts = Math.min(deps.trialAttempts ?? DEFAULT_TRIAL_ATTEMPTS, deps.bootSlots.maxTrialAttempts);
        await deps.bootSlots.armTrial(slot, { attempts, ...boot });
        return done;
      }
      case 'set-state': {
        expectArguments(2);
        const slot = slotArgument(rest[0], command);
        const state = rest[1];
        if (state !== 'good' && state !== 'bad') throw new MisuseError(`set-state ${slot}: the state must be good or bad, not "${state ?? ''}"`);
        if (state === 'bad') return done;
        const { current } = await deps.bootSlots.status();
        if (slot !== current) throw new Error(`slot ${slot} is not the running slot (${current}); only a slot that is running can be marked good`);
        await deps.bootSlots.markCurrentGood();
        return done;
      }
      default:
        throw new MisuseError(command === undefined ? `no command given; ${USAGE}` : `unknown command "${command}"; ${USAGE}`);
    }
  } catch (err) {
    const misuse = err instanceof MisuseError;
    const reason = err instanceof Error ? err.message : String(err);
    return { exitCode: misuse ? MISUSED : FAILED, stdout: '', stderr: `memu-agent rauc-boot-backend ${args.join(' ')}: ${reason}\n` };
  }
}

export interface DeviceBootBackendOptions {
  layoutPath?: string;
  /** Where the image mounts the ESP (x86-64). */
  espDir?: string;
  /** Where the image mounts the Pi's bootconfig partition. */
  bootconfigDir?: string;
  cmdlinePath?: string;
  /** This boot's id (tryboot tells the boot that armed a trial from later ones by it). */
  bootIdPath?: string;
  partitionDevice?: PartitionDevice;
}

/**
 * The device's boot slots, chosen from the disk layout the image wrote: boot partitions
 * mean the Pi's tryboot, an ESP means systemd-boot.
 */
export async function deviceBootBackendDeps(opts: DeviceBootBackendOptions = {}): Promise<RaucBootBackendDeps> {
  const layout = await loadDiskLayout(opts.layoutPath ?? DISK_LAYOUT_PATH);
  if (layout.partitions.some((p) => p.role === 'boot-a')) {
    const bootconfigDir = opts.bootconfigDir ?? RASPBERRY_PI_MOUNT_POINTS.bootconfig;
    return {
      bootSlots: createTrybootBootSlots({ bootconfigDir, cmdlinePath: opts.cmdlinePath, bootIdPath: opts.bootIdPath, layoutPath: opts.layoutPath }),
      slotBootFiles: bootPartitionSlotBootFiles({ layout, partitionDevice: opts.partitionDevice }),
    };
  }
  const espDir = opts.espDir ?? '/boot/efi';
  return {
    bootSlots: createSystemdBootSlots({ espDir, cmdlinePath: opts.cmdlinePath }),
    slotBootFiles: espSlotBootFiles({ layout, espDir, partitionDevice: opts.partitionDevice }),
  };
}

/** `memu-agent rauc-boot-backend ARGS` (main.ts): answers RAUC on stdout and stderr, returns the exit code. */
export async function raucBootBackendCommand(args: readonly string[], opts: DeviceBootBackendOptions = {}): Promise<number> {
  let result: RaucBootBackendAnswer;
  try {
    result = await answerRaucBootBackend(args, await deviceBootBackendDeps(opts));
  } catch (err) {
    result = { exitCode: FAILED, stdout: '', stderr: `memu-agent rauc-boot-backend ${args.join(' ')}: ${err instanceof Error ? err.message : String(err)}\n` };
  }
  process.stdout.write(result.stdout);
  process.stderr.write(result.stderr);
  return result.exitCode;
}
