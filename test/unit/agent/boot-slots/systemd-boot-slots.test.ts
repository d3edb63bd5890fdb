import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BootSlotsError, createSystemdBootSlots, type BootSlot } from '../../../../agent/boot-slots/index.ts';
import { systemdBootEntryText } from '../../../../shared/contracts/boot-slots.ts';

/**
 * Against a directory laid out like the ESP the image ships (loader.conf naming slot A,
 * memu-a.conf, slot A's kernel), with a file standing in for /proc/cmdline. What
 * systemd-boot itself does at boot (renaming `+3` to `+2-1` before starting an entry) is
 * done by the test, named loaderStarts, after asking the module which entry boots next.
 */
const cmdline = (slot: BootSlot) => `root=PARTUUID=x rw rootwait memu.slot=${slot} console=ttyS0`;

describe('boot slots on systemd-boot', () => {
  let esp: string;
  let procCmdline: string;
  const slots = () => createSystemdBootSlots({ espDir: esp, cmdlinePath: procCmdline });
  const entries = async () => (await readdir(join(esp, 'loader/entries'))).sort();
  const runningOn = (slot: BootSlot) => writeFile(procCmdline, `${cmdline(slot)}\n`);
  const installBootFiles = async (slot: BootSlot) => {
    await mkdir(join(esp, 'memu', slot), { recursive: true });
    await writeFile(join(esp, 'memu', slot, 'vmlinuz'), `kernel ${slot}`);
    await writeFile(join(esp, 'memu', slot, 'initrd.img'), `initrd ${slot}`);
  };
  /** What systemd-boot does before starting a counted entry: one try left fewer, one more done. */
  const loaderStarts = async (slot: BootSlot) => {
    const status = await slots().status();
    expect(status.nextBoot, `the loader starts slot ${slot}`).toBe(slot);
    const name = (await entries()).find((n) => n.startsWith(`memu-${slot}`))!;
    const m = /\+(\d+)(?:-(\d+))?\.conf$/.exec(name);
    if (m) await rename(join(esp, 'loader/entries', name), join(esp, 'loader/entries', `memu-${slot}+${Math.max(0, Number(m[1]) - 1)}-${Number(m[2] ?? 0) + 1}.conf`));
    await runningOn(slot);
  };
  const trial = { attempts: 3, kernelVersion: '6.12.99-memu', kernelCmdline: cmdline('b') };

  beforeEach(async () => {
    esp = await mkdtemp(join(tmpdir(), 'memu-esp-'));
    procCmdline = join(esp, '..', `${esp.split('/').at(-1)}-cmdline`);
    await mkdir(join(esp, 'loader/entries'), { recursive: true });
    await writeFile(join(esp, 'loader/loader.conf'), 'default memu-a.conf\ntimeout 0\neditor no\nconsole-mode keep\n');
    await writeFile(join(esp, 'loader/entries/memu-a.conf'), systemdBootEntryText({ slot: 'a', kernelVersion: '6.12.1', kernelCmdline: cmdline('a') }));
    await installBootFiles('a');
    await runningOn('a');
  });
  afterEach(async () => {
    await rm(esp, { recursive: true, force: true });
    await rm(procCmdline, { force: true });
  });

  it('reads the image as shipped: running slot A, which is good and boots next; slot B has nothing', async () => {
    expect(await slots().status()).toEqual({
      current: 'a',
      nextBoot: 'a',
      slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'absent' } },
    });
  });

  it('says which slot runs from memu.slot= on the kernel command line, and refuses to guess without it', async () => {
    await runningOn('b');
    expect((await slots().status()).current).toBe('b');
    await writeFile(procCmdline, 'root=/dev/sda2 ro quiet\n');
    await expect(slots().status()).rejects.toThrow(/no memu\.slot=a or memu\.slot=b/);
  });

  it('arms a trial of the idle slot as a counted entry that boots next, without EFI variables', async () => {
    await installBootFiles('b');
    expect(await slots().armTrial('b', trial)).toEqual({ slot: 'b', attempts: 3 });
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+3.conf']);
    const entry = await readFile(join(esp, 'loader/entries/memu-b+3.conf'), 'utf8');
    expect(entry).toContain('linux /memu/b/vmlinuz');
    expect(entry).toContain(`options ${cmdline('b')}`);
    expect(entry).toMatch(/^sort-key memu-\d{8}$/m);
    // The default must match both entries for the order, and the fallback, to decide.
    expect(await readFile(join(esp, 'loader/loader.conf'), 'utf8')).toBe('default memu-*.conf\ntimeout 0\neditor no\nconsole-mode keep\n');
    const status = await slots().status();
    expect(status.nextBoot).toBe('b');
    expect(status.slots.b).toEqual({ slot: 'b', state: 'trial', attemptsLeft: 3 });
  });

  it('counts the attempts down as the loader does, and marking good drops the counter and keeps the slot', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', trial);
    await loaderStarts('b');
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+2-1.conf']);
    expect((await slots().status()).slots.b).toEqual({ slot: 'b', state: 'trial', attemptsLeft: 2 });
    expect(await slots().markCurrentGood()).toEqual({ slot: 'b', state: 'good' });
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b.conf']);
    expect(await slots().status()).toMatchObject({ current: 'b', nextBoot: 'b', slots: { a: { state: 'good' }, b: { state: 'good' } } });
  });

  it('falls back to the good slot once a trial has used up its attempts', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', { ...trial, attempts: 2 });
    await loaderStarts('b');
    await loaderStarts('b');
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+0-2.conf']);
    const status = await slots().status();
    expect(status.slots.b).toEqual({ slot: 'b', state: 'bad', attemptsLeft: 0 });
    expect(status.nextBoot).toBe('a');
  });

  it('tries once: a trial of one attempt boots the slot once, then the other', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', { ...trial, attempts: 1 });
    await loaderStarts('b');
    expect((await slots().status()).nextBoot).toBe('a');
  });

  it('a later update of the other slot sorts first again, whatever the slot names', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', trial);
    await loaderStarts('b');
    await slots().markCurrentGood();
    await slots().armTrial('a', { ...trial, kernelCmdline: cmdline('a') });
    expect(await entries()).toEqual(['memu-a+3.conf', 'memu-b.conf']);
    expect((await slots().status()).nextBoot).toBe('a');
    await loaderStarts('a');
    await slots().markCurrentGood();
    expect(await slots().status()).toMatchObject({ current: 'a', nextBoot: 'a' });
  });

  it('re-arming a slot replaces its earlier entry', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', { ...trial, attempts: 1 });
    await loaderStarts('b');
    await runningOn('a');
    await slots().armTrial('b', trial);
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+3.conf']);
    expect((await slots().status()).nextBoot).toBe('b');
  });

  it('refuses a trial of the running slot, of a slot without its kernel, with a command line for another slot, or with a bad count', async () => {
    await expect(slots().armTrial('a', { ...trial, kernelCmdline: cmdline('a') })).rejects.toThrow(/slot a is the running one/);
    await expect(slots().armTrial('b', trial)).rejects.toThrow(/slot b has no \/memu\/b\/vmlinuz on the ESP/);
    await installBootFiles('b');
    await expect(slots().armTrial('b', { ...trial, kernelCmdline: cmdline('a') })).rejects.toThrow(/must carry memu\.slot=b/);
    await expect(slots().armTrial('b', { ...trial, attempts: 0 })).rejects.toThrow(BootSlotsError);
    await expect(slots().armTrial('b', { ...trial, attempts: 6 })).rejects.toThrow(/1 to 5 attempts/);
    expect(await entries()).toEqual(['memu-a.conf']);
  });

  it('an interrupted write leaves what the loader ignores, and the next change sweeps it', async () => {
    await installBootFiles('b');
    // A temporary file as writeFileAtomic leaves it when killed before its rename.
    await writeFile(join(esp, 'loader/entries/.memu-b+3.conf.tmp-4242-abcdef012345'), 'half an entry');
    expect(await slots().status()).toMatchObject({ nextBoot: 'a', slots: { b: { state: 'absent' } } });
    await slots().armTrial('b', trial);
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+3.conf']);
  });

  it('a trial interrupted after its entry appeared is already armed; marking good then leaves one entry per slot', async () => {
    await installBootFiles('b');
    await slots().armTrial('b', { ...trial, attempts: 1 });
    await loaderStarts('b');
    await slots().markCurrentGood();
    await runningOn('a');
    // As if the power went after the new entry's rename, before the old entry was removed.
    await writeFile(
      join(esp, 'loader/entries/memu-b+3.conf'),
      systemdBootEntryText({ slot: 'b', kernelVersion: '6.12.100', kernelCmdline: cmdline('b'), sortKey: 'memu-00000001' }),
    );
    expect(await slots().status()).toMatchObject({ nextBoot: 'b', slots: { b: { state: 'trial', attemptsLeft: 3 } } });
    await loaderStarts('b');
    await slots().markCurrentGood();
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b.conf']);
    expect(await readFile(join(esp, 'loader/entries/memu-b.conf'), 'utf8')).toContain('version 6.12.100');
  });
});
