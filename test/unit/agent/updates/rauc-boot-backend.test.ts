import { describe, expect, it } from 'vitest';
import { answerRaucBootBackend, type RaucBootBackendDeps } from '../../../../agent/updates/index.ts';
import type { ArmedTrial, BootSlot, BootSlots, BootSlotsStatus, SlotState, TrialRequest } from '../../../../shared/contracts/boot-slots.ts';

/**
 * A fake BootSlots: the slots' states in memory, every call recorded. The real ones
 * (systemd-boot on an ESP directory) answer the same calls in
 * test/integration/agent/updates/rauc-boot-backend.test.ts; here the protocol is checked
 * in every state a loader can be in, including failures the real ones cannot be made to have.
 */
class FakeBootSlots implements BootSlots {
  readonly backend = 'systemd-boot' as const;
  readonly calls: string[] = [];
  failure?: Error;
  constructor(
    public current: BootSlot,
    public nextBoot: BootSlot | undefined,
    public states: Record<BootSlot, SlotState>,
    readonly maxTrialAttempts = 5,
  ) {}
  async status(): Promise<BootSlotsStatus> {
    this.calls.push('status');
    if (this.failure) throw this.failure;
    const slot = (s: BootSlot) => ({ slot: s, state: this.states[s] });
    return { current: this.current, nextBoot: this.nextBoot, slots: { a: slot('a'), b: slot('b') } };
  }
  async armTrial(slot: BootSlot, request: TrialRequest): Promise<ArmedTrial> {
    this.calls.push(`armTrial ${slot} ${request.attempts} ${request.kernelVersion} ${request.kernelCmdline}`);
    this.states[slot] = 'trial';
    this.nextBoot = slot;
    return { slot, attempts: request.attempts };
  }
  async markCurrentGood() {
    this.calls.push('markCurrentGood');
    this.states[this.current] = 'good';
    return { slot: this.current, state: 'good' as const };
  }
}

/** The shipped image: running slot A, good, boots next; slot B empty. */
const shipped = () => new FakeBootSlots('a', 'a', { a: 'good', b: 'absent' });

function backend(slots: FakeBootSlots, opts: { installFails?: Error; trialAttempts?: number } = {}) {
  const installed: BootSlot[] = [];
  const deps: RaucBootBackendDeps = {
    bootSlots: slots,
    slotBootFiles: {
      async install(slot) {
        if (opts.installFails) throw opts.installFails;
        installed.push(slot);
        return { kernelVersion: '6.12.99-amd64', kernelCmdline: `root=PARTUUID=bbbb rw memu.slot=${slot}` };
      },
    },
    trialAttempts: opts.trialAttempts,
  };
  return { call: (...args: string[]) => answerRaucBootBackend(args, deps), installed };
}

describe('RAUC boot backend protocol', () => {
  it('get-primary prints the slot the loader starts next, one word', async () => {
    expect(await backend(shipped()).call('get-primary')).toEqual({ exitCode: 0, stdout: 'a\n', stderr: '' });
    expect((await backend(new FakeBootSlots('a', 'b', { a: 'good', b: 'trial' })).call('get-primary')).stdout).toBe('b\n');
  });

  it('get-primary fails, saying why, when nothing is bootable', async () => {
    const r = await backend(new FakeBootSlots('a', undefined, { a: 'bad', b: 'bad' })).call('get-primary');
    expect(r).toMatchObject({ exitCode: 1, stdout: '' });
    expect(r.stderr).toContain('no slot is bootable');
  });

  it('get-current prints the running slot', async () => {
    expect(await backend(new FakeBootSlots('b', 'b', { a: 'good', b: 'good' })).call('get-current')).toEqual({ exitCode: 0, stdout: 'b\n', stderr: '' });
  });

  it('get-state: good for a good slot and an armed trial, bad for a bad or absent one', async () => {
    const slots = new FakeBootSlots('a', 'b', { a: 'good', b: 'trial' });
    expect((await backend(slots).call('get-state', 'a')).stdout).toBe('good\n');
    expect((await backend(slots).call('get-state', 'b')).stdout).toBe('good\n');
    slots.states.b = 'bad';
    expect((await backend(slots).call('get-state', 'b')).stdout).toBe('bad\n');
    expect(await backend(shipped()).call('get-state', 'b')).toEqual({ exitCode: 0, stdout: 'bad\n', stderr: '' });
  });

  it('set-primary of the idle slot puts its boot files in place, then arms a trial with them', async () => {
    const slots = shipped();
    const b = backend(slots);
    expect(await b.call('set-primary', 'b')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(b.installed).toEqual(['b']);
    expect(slots.calls).toEqual(['status', 'armTrial b 3 6.12.99-amd64 root=PARTUUID=bbbb rw memu.slot=b']);
    expect((await b.call('get-primary')).stdout).toBe('b\n');
  });

  it('set-primary asks for no more attempts than the loader counts (tryboot: one)', async () => {
    const slots = new FakeBootSlots('a', 'a', { a: 'good', b: 'absent' }, 1);
    await backend(slots, { trialAttempts: 3 }).call('set-primary', 'b');
    expect(slots.calls.at(-1)).toMatch(/^armTrial b 1 /);
  });

  it('set-primary of the running slot does nothing: no boot files, no trial', async () => {
    const slots = shipped();
    const b = backend(slots);
    expect(await b.call('set-primary', 'a')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(b.installed).toEqual([]);
    expect(slots.calls).toEqual(['status']);
    expect(slots.states).toEqual({ a: 'good', b: 'absent' });
  });

  it('set-primary arms nothing when the boot files cannot be put in place, and says why', async () => {
    const slots = shipped();
    const r = await backend(slots, { installFails: new Error('slot b has no kernel with an initrd in /boot') }).call('set-primary', 'b');
    expect(r).toEqual({ exitCode: 1, stdout: '', stderr: 'memu-agent rauc-boot-backend set-primary b: slot b has no kernel with an initrd in /boot\n' });
    expect(slots.calls).toEqual(['status']);
    expect(slots.nextBoot).toBe('a');
  });

  it('set-state good of the running slot commits it; of the idle slot it is refused', async () => {
    const slots = new FakeBootSlots('b', 'b', { a: 'good', b: 'trial' });
    expect(await backend(slots).call('set-state', 'b', 'good')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(slots.calls).toEqual(['status', 'markCurrentGood']);
    expect(slots.states.b).toBe('good');
    const r = await backend(slots).call('set-state', 'a', 'good');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('slot a is not the running slot (b); only a slot that is running can be marked good');
    expect(slots.calls.filter((c) => c === 'markCurrentGood')).toHaveLength(1);
  });

  it('set-state bad changes nothing (RAUC calls it before writing the idle slot)', async () => {
    const slots = new FakeBootSlots('a', 'a', { a: 'good', b: 'good' });
    expect(await backend(slots).call('set-state', 'b', 'bad')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(slots.calls).toEqual([]);
    expect(slots.states).toEqual({ a: 'good', b: 'good' });
  });

  it('a failing boot slot read is a non-zero exit with the reason on stderr and nothing on stdout', async () => {
    const slots = shipped();
    slots.failure = new Error('the kernel command line (/proc/cmdline) has no memu.slot=a or memu.slot=b');
    for (const args of [['get-primary'], ['get-current'], ['get-state', 'a'], ['set-primary', 'b'], ['set-state', 'a', 'good']]) {
      const r = await backend(slots).call(...args);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(`memu-agent rauc-boot-backend ${args.join(' ')}: the kernel command line (/proc/cmdline) has no memu.slot=a or memu.slot=b\n`);
    }
  });

  it('refuses unknown commands, bootnames, states and extra arguments with exit 2, naming what is wrong', async () => {
    const cases: [string[], string][] = [
      [['reboot'], 'unknown command "reboot"; commands (from RAUC): get-primary, set-primary <a|b>, get-state <a|b>, set-state <a|b> <good|bad>, get-current'],
      [[], 'no command given'],
      [['get-state', 'rootfs.1'], '"rootfs.1" is not a slot\'s bootname; system.conf names them a and b'],
      [['set-primary'], 'set-primary needs a slot\'s bootname (a or b)'],
      [['set-state', 'a', 'great'], 'the state must be good or bad, not "great"'],
      [['get-primary', 'a'], 'get-primary takes 0 arguments, got 1: a'],
    ];
    for (const [args, reason] of cases) {
      const slots = shipped();
      const r = await backend(slots).call(...args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(reason);
      expect(slots.calls).toEqual([]);
    }
  });
});
