import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BootSlotsError, createTrybootBootSlots, type BootSlot, type TrybootReboot } from '../../../../agent/boot-slots/index.ts';
import { piFirmwareBoot } from '../../../../agent/boot-slots/pi-firmware-model.ts';
import { DISK_LAYOUT_FORMAT, type DiskLayout } from '../../../../shared/contracts/disk-layout.ts';

/**
 * Against a directory standing in for the mounted bootconfig partition, with files
 * standing in for /proc/cmdline, the boot id and /etc/memu/layout.json. The board is
 * played by the firmware model: firmwareStarts asks it which partition boots, clears the
 * tryboot flag as the firmware does, and "starts" that slot (new command line, new boot id).
 */
const BOOT_PARTITION = { a: 2, b: 3 } as const;
const SHIPPED = '[all]\ntryboot_a_b=1\nboot_partition=2\n';
const cmdline = (slot: BootSlot) => `console=serial0,115200 root=PARTUUID=x rootwait memu.slot=${slot}`;

function piLayout(): DiskLayout {
  const roles = ['bootconfig', 'boot-a', 'boot-b', 'root-a', 'root-b', 'data'] as const;
  return {
    format: DISK_LAYOUT_FORMAT,
    profile: 'pi5',
    diskGuid: randomUUID(),
    sectorSize: 512,
    imageSizeBytes: 8 << 20,
    partitions: roles.map((role, i) => ({
      number: i + 1,
      role,
      label: `memu-${role}`,
      partUuid: randomUUID(),
      typeGuid: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
      filesystem: role.startsWith('boot') ? 'vfat' : 'ext4',
      fsUuid: randomUUID(),
      startBytes: (i + 1) << 20,
      sizeBytes: 1 << 20,
    })),
  };
}

describe('boot slots on the Raspberry Pi 5 tryboot', () => {
  let dir: string;
  let bootconfig: string;
  let trybootFlag: boolean;
  let bootablePartitions: number[];
  const autoboot = () => readFile(join(bootconfig, 'autoboot.txt'), 'utf8');
  const rebootWithFlag: TrybootReboot = {
    requestTrybootReboot: async () => {
      trybootFlag = true;
    },
  };
  /** The slots with a reboot that sets the flag, as the Raspberry Pi kernel can; `{}` for the default one. */
  const slots = (reboot: { trybootReboot?: TrybootReboot } = { trybootReboot: rebootWithFlag }) =>
    createTrybootBootSlots({
      bootconfigDir: bootconfig,
      cmdlinePath: join(dir, 'cmdline'),
      bootIdPath: join(dir, 'boot_id'),
      layoutPath: join(dir, 'layout.json'),
      ...reboot,
    });
  const start = async (slot: BootSlot) => {
    await writeFile(join(dir, 'cmdline'), `${cmdline(slot)}\n`);
    await writeFile(join(dir, 'boot_id'), `${randomUUID()}\n`);
  };
  /** A reset of the board: the model picks the partition and clears the flag. */
  const firmwareStarts = async (): Promise<BootSlot> => {
    const boot = piFirmwareBoot({ autobootTxt: await autoboot(), trybootFlag, bootablePartitions });
    trybootFlag = boot.trybootFlag;
    expect(boot.configFile).toBe('config.txt');
    const slot = (['a', 'b'] as const).find((s) => BOOT_PARTITION[s] === boot.partition);
    if (!slot) throw new Error(`the firmware started partition ${boot.partition}, which holds no slot`);
    await start(slot);
    return slot;
  };
  const trial = { attempts: 1, kernelVersion: '6.12.99-memu', kernelCmdline: cmdline('b') };
  /** An update filled boot B and arms its trial. */
  const armB = async () => {
    bootablePartitions = [2, 3];
    return slots().armTrial('b', trial);
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-tryboot-'));
    bootconfig = join(dir, 'bootconfig');
    await mkdir(bootconfig);
    await writeFile(join(bootconfig, 'autoboot.txt'), SHIPPED);
    await writeFile(join(dir, 'layout.json'), JSON.stringify(piLayout()));
    trybootFlag = false;
    bootablePartitions = [2];
    await firmwareStarts();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the image as shipped: running slot A, which is good and boots next; slot B has nothing', async () => {
    expect(slots().maxTrialAttempts).toBe(1);
    expect(await slots().status()).toEqual({
      current: 'a',
      nextBoot: 'a',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'absent' } },
    });
  });

  it('arms a trial as [tryboot] boot_partition with a mark of this boot, and tells the caller to reboot with the flag', async () => {
    expect(await armB()).toEqual({ slot: 'b', attempts: 1, rebootArgument: '0 tryboot' });
    const bootId = (await readFile(join(dir, 'boot_id'), 'utf8')).trim();
    expect(await autoboot()).toBe(`${SHIPPED}[tryboot]\nboot_partition=3\n# memu-trial slot=b armed-in-boot=${bootId}\n`);
    // A plain reset still starts A: only the flag starts the trial.
    expect(await slots().status()).toEqual({
      current: 'a',
      nextBoot: 'a',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'trial', attemptsLeft: 1 } },
    });
  });

  it('switch and commit: the trial boots once with the flag, mark good makes every reset boot it', async () => {
    await armB();
    await slots().rebootIntoTrial();
    expect(await firmwareStarts()).toBe('b');
    expect(await slots().status()).toEqual({
      current: 'b',
      nextBoot: 'a',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'trial', attemptsLeft: 0 } },
    });
    expect(await slots().markCurrentGood()).toEqual({ slot: 'b', state: 'good' });
    expect(await autoboot()).toBe('[all]\ntryboot_a_b=1\nboot_partition=3\n[tryboot]\nboot_partition=2\n');
    expect(await firmwareStarts()).toBe('b');
    expect(await firmwareStarts()).toBe('b');
    expect(await slots().status()).toEqual({
      current: 'b',
      nextBoot: 'b',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'good' } },
    });
  });

  it('fallback: a reset of the trial without mark good starts A again and reports B bad; B can be armed again', async () => {
    await armB();
    await slots().rebootIntoTrial();
    expect(await firmwareStarts()).toBe('b');
    expect(await firmwareStarts()).toBe('a');
    expect(await slots().status()).toEqual({
      current: 'a',
      nextBoot: 'a',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'bad', attemptsLeft: 0 } },
    });
    await expect(slots().rebootIntoTrial()).rejects.toThrow(/no trial was armed in this boot/);
    await slots().armTrial('b', trial);
    expect((await slots().status()).slots.b).toEqual({ slot: 'b', state: 'trial', attemptsLeft: 1 });
    expect((await autoboot()).match(/memu-trial/g)).toHaveLength(1);
  });

  it('a reboot without the flag spends the trial: nothing in autoboot.txt tells it from a failed one', async () => {
    await armB();
    expect(await firmwareStarts()).toBe('a');
    expect((await slots().status()).slots.b).toEqual({ slot: 'b', state: 'bad', attemptsLeft: 0 });
  });

  it("on Debian's kernel the agent cannot reboot with the flag, and says so instead of rebooting plainly", async () => {
    await armB();
    const before = await autoboot();
    await expect(slots({}).rebootIntoTrial()).rejects.toThrow(/Debian's kernel does not pass the tryboot flag/);
    expect(trybootFlag).toBe(false);
    expect(await autoboot()).toBe(before);
  });

  it('a later update of A after B was committed works the same way, the other way round', async () => {
    await armB();
    await slots().rebootIntoTrial();
    await firmwareStarts();
    await slots().markCurrentGood();
    await slots().armTrial('a', { ...trial, kernelCmdline: cmdline('a') });
    await slots().rebootIntoTrial();
    expect(await firmwareStarts()).toBe('a');
    await slots().markCurrentGood();
    expect(await firmwareStarts()).toBe('a');
    expect(await autoboot()).toBe('[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n');
  });

  it('marking the committed slot good changes nothing; a slot started with the flag but never armed is not committed', async () => {
    await armB();
    await slots().rebootIntoTrial();
    await firmwareStarts();
    await slots().markCurrentGood();
    const committed = await autoboot();
    expect(await slots().markCurrentGood()).toEqual({ slot: 'b', state: 'good' });
    expect(await autoboot()).toBe(committed);
    // A stray tryboot reboot starts the previous slot once; committing it would undo the update.
    trybootFlag = true;
    expect(await firmwareStarts()).toBe('a');
    await expect(slots().markCurrentGood()).rejects.toThrow(/running slot a was not started as an armed trial/);
    expect(await autoboot()).toBe(committed);
  });

  it('refuses a trial of the running slot, of more than one attempt, with a command line for another slot, or while running a trial', async () => {
    bootablePartitions = [2, 3];
    await expect(slots().armTrial('a', { ...trial, kernelCmdline: cmdline('a') })).rejects.toThrow(/slot a is the running one/);
    await expect(slots().armTrial('b', { ...trial, attempts: 3 })).rejects.toThrow(/needs 1 attempt, not 3/);
    await expect(slots().armTrial('b', { ...trial, kernelCmdline: cmdline('a') })).rejects.toThrow(/must carry memu\.slot=b/);
    expect(await autoboot()).toBe(SHIPPED);
    await slots().armTrial('b', trial);
    await slots().rebootIntoTrial();
    await firmwareStarts();
    await expect(slots().armTrial('a', { ...trial, kernelCmdline: cmdline('a') })).rejects.toThrow(/running slot b is itself on trial/);
  });

  it('keeps other keys, comments, unknown sections and CRLF through arming and commit', async () => {
    const ours = '# Memu A/B\r\n[all]\r\ntryboot_a_b=1\r\nboot_partition=2\r\n[pi5]\r\nfoo=bar\r\n';
    await writeFile(join(bootconfig, 'autoboot.txt'), ours);
    await armB();
    expect(await autoboot()).toMatch(/^# Memu A\/B\r\n\[all\]\r\ntryboot_a_b=1\r\nboot_partition=2\r\n\[pi5\]\r\nfoo=bar\r\n\[tryboot\]\r\nboot_partition=3\r\n# memu-trial slot=b armed-in-boot=\S+\r\n$/);
    await slots().rebootIntoTrial();
    expect(await firmwareStarts()).toBe('b');
    await slots().markCurrentGood();
    expect(await autoboot()).toBe('# Memu A/B\r\n[all]\r\ntryboot_a_b=1\r\nboot_partition=3\r\n[pi5]\r\nfoo=bar\r\n[tryboot]\r\nboot_partition=2\r\n');
  });

  it('adds tryboot_a_b=1 when the file lacks it, so the trial partition is started with its config.txt', async () => {
    await writeFile(join(bootconfig, 'autoboot.txt'), '[all]\nboot_partition=2\n');
    await armB();
    expect(await autoboot()).toMatch(/^\[all\]\nboot_partition=2\ntryboot_a_b=1\n\[tryboot\]\nboot_partition=3\n/);
    await slots().rebootIntoTrial();
    expect(await firmwareStarts()).toBe('b');
  });

  it('writes nothing that would not arm the trial, or that the firmware would not read whole', async () => {
    const overridden = '[tryboot]\nboot_partition=3\n[all]\ntryboot_a_b=1\nboot_partition=2\n';
    await writeFile(join(bootconfig, 'autoboot.txt'), overridden);
    await expect(armB()).rejects.toThrow(/boot_partition=3 would not apply on a tryboot boot \(line 5 wins\)/);
    expect(await autoboot()).toBe(overridden);
    const fileLevel = `${SHIPPED}[tryboot]\ntryboot_a_b=0\n`;
    await writeFile(join(bootconfig, 'autoboot.txt'), fileLevel);
    await expect(armB()).rejects.toThrow(/tryboot_a_b=1 would not apply on a tryboot boot \(line 5 wins\)/);
    expect(await autoboot()).toBe(fileLevel);
    const long = `${SHIPPED}#${'-'.repeat(420)}\n`;
    await writeFile(join(bootconfig, 'autoboot.txt'), long);
    await expect(armB()).rejects.toThrow(/would be \d+ bytes; the firmware reads at most 512/);
    expect(await autoboot()).toBe(long);
  });

  it('refuses to guess: no memu.slot=, or a normal boot of a partition that is no slot', async () => {
    await writeFile(join(dir, 'cmdline'), 'root=/dev/nvme0n1p4 ro\n');
    await expect(slots().status()).rejects.toThrow(/no memu\.slot=a or memu\.slot=b/);
    await start('a');
    await writeFile(join(bootconfig, 'autoboot.txt'), '[all]\nboot_partition=5\n');
    await expect(slots().status()).rejects.toThrow(BootSlotsError);
    await expect(slots().status()).rejects.toThrow(/starts partition 5 on a normal boot, which is neither slot's boot partition \(a: 2, b: 3\)/);
  });

  it('an interrupted write leaves autoboot.txt whole, and the next write sweeps the leftover', async () => {
    const leftover = '.autoboot.txt.tmp-4242-abcdef012345';
    await writeFile(join(bootconfig, leftover), '[all]\nboot_part');
    expect((await slots().status()).slots.b.state).toBe('absent');
    await armB();
    expect(await readdir(bootconfig)).toEqual(['autoboot.txt']);
  });
});
