import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createBootRecord,
  createPreviousBootCheck,
  evaluatePreviousBoot,
  listPstoreRecords,
  readWatchdogReset,
  type PreviousBoot,
} from '../../../../../agent/health/checks/previous-boot.ts';

// Sysfs trees after a start: QEMU's i6300esb after it reset the VM (bootstatus 32, the
// watchdog core's decimal WDIOF_CARDRESET) and after a normal start; a NUC whose pstore
// kept a panic's log; systemd-pstore's copy. See test/fixtures/health/previous-boot/README.md.
const board = (name: string) => fileURLToPath(new URL(`../../../../fixtures/health/previous-boot/${name}`, import.meta.url));

const HOUR = 60 * 60_000;
const DAY = 24 * HOUR;
const T0 = Date.parse('2026-12-01T08:00:00Z');

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tempDir = async () => {
  const d = await mkdtemp(join(tmpdir(), 'memu-boot-'));
  dirs.push(d);
  return d;
};

/** One start of the agent: a boot id, a board's sysfs, a clock. */
async function boot(dataDir: string, bootId: string, at: number, sysBoard = 'qemu-normal') {
  const procDir = await tempDir();
  await mkdir(join(procDir, 'sys/kernel/random'), { recursive: true });
  await writeFile(join(procDir, 'sys/kernel/random/boot_id'), `${bootId}\n`);
  const sysDir = join(board(sysBoard), 'sys');
  const record = createBootRecord({ dataDir, procDir, sysDir, pstoreDirs: [join(sysDir, 'fs/pstore')], now: () => new Date(at) });
  return { record, previous: await record.start() };
}

const judge = (previous: PreviousBoot, at: number) => evaluatePreviousBoot(previous, new Date(at))[0]!;

describe('the boot record', () => {
  it('the first start has no previous boot: ok, and the record holds this boot', async () => {
    const data = await tempDir();
    const { previous } = await boot(data, 'boot-a', T0);
    expect(previous).toEqual({ current: { bootId: 'boot-a', startedAt: '2026-12-01T08:00:00.000Z' }, uncleanEndings: [] });
    expect(judge(previous, T0)).toMatchObject({ check: 'previous-boot', status: 'ok', reason: 'This is the first start the box has recorded, so there is no previous boot to judge.' });
    const file = JSON.parse(await readFile(join(data, 'agent/boot-record.json'), 'utf8'));
    expect(file).toEqual({ version: 1, boots: [{ bootId: 'boot-a', startedAt: '2026-12-01T08:00:00.000Z' }], pstoreSeen: [] });
  });

  it('a shutdown the agent marked is clean: ok', async () => {
    const data = await tempDir();
    const a = await boot(data, 'boot-a', T0);
    await a.record.markCleanShutdown();
    const { previous } = await boot(data, 'boot-b', T0 + HOUR);
    expect(previous.previous).toMatchObject({ bootId: 'boot-a', ending: 'clean', evidence: 'the agent was stopped for a system shutdown' });
    const r = judge(previous, T0 + HOUR);
    expect(r).toMatchObject({ status: 'ok', reason: 'The box last shut down cleanly; no unclean stops in the last 7 days.' });
    expect(r.action).toBeUndefined();
    expect(r.metrics).toContainEqual({ name: 'memu_previous_boot_ending', help: 'How the previous boot ended (1 for the way it did)', type: 'gauge', labels: { ending: 'clean' }, value: 1 });
  });

  it('no mark and no evidence: power loss or hang, said but ok (power cuts happen in every home)', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const { previous } = await boot(data, 'boot-b', T0 + DAY);
    expect(previous.previous).toMatchObject({ ending: 'power-loss-or-hang', detectedAt: new Date(T0 + DAY).toISOString() });
    expect(judge(previous, T0 + DAY + 2 * HOUR)).toMatchObject({
      status: 'ok',
      reason:
        'The box started again 2 hours ago after it lost power, or froze, without shutting down properly (no shutdown was recorded and no crash or watchdog reset was reported). It stopped uncleanly 1 time in the last 7 days.',
      action:
        'Nothing to do if the power was cut or the box was unplugged; otherwise check the power supply and its cable, and shut the box down from the dashboard before unplugging it.',
    });
    const later = judge(previous, T0 + DAY + 24 * HOUR);
    expect(later.status).toBe('ok');
    expect(later.metrics).toContainEqual({ name: 'memu_unclean_boots', help: 'Boots that ended without a clean shutdown in the last 7 days', type: 'gauge', labels: { window: '7d' }, value: 1 });
  });

  it('a watchdog reset stays degraded for its 24 hours even when a clean restart followed; a power cut does not', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const b = await boot(data, 'boot-b', T0 + DAY, 'qemu-watchdog-reset');
    await b.record.markCleanShutdown();
    const { previous } = await boot(data, 'boot-c', T0 + DAY + HOUR);
    expect(previous.previous?.ending).toBe('clean');
    expect(judge(previous, T0 + DAY + 3 * HOUR)).toMatchObject({
      status: 'degraded',
      reason: 'The box last shut down cleanly, but 3 hours ago it had to start again after it froze and its hardware watchdog restarted it. It stopped uncleanly 1 time in the last 7 days.',
    });
    expect(judge(previous, T0 + 2 * DAY + HOUR)).toMatchObject({ status: 'ok', reason: 'The box last shut down cleanly; it stopped uncleanly 1 time in the last 7 days.' });

    const other = await tempDir();
    await boot(other, 'boot-a', T0);
    const c = await boot(other, 'boot-b', T0 + DAY);
    await c.record.markCleanShutdown();
    const afterPowerCut = await boot(other, 'boot-c', T0 + DAY + HOUR);
    expect(judge(afterPowerCut.previous, T0 + DAY + 3 * HOUR).status).toBe('ok');
  });

  it("QEMU's i6300esb reporting a card reset: the watchdog restarted a frozen box", async () => {
    expect(await readWatchdogReset(join(board('qemu-watchdog-reset'), 'sys'))).toBe('watchdog0');
    expect(await readWatchdogReset(join(board('qemu-normal'), 'sys'))).toBeUndefined();
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const { previous } = await boot(data, 'boot-b', T0 + HOUR, 'qemu-watchdog-reset');
    expect(judge(previous, T0 + HOUR)).toMatchObject({
      status: 'degraded',
      reason:
        'The box started again less than a minute ago after it froze and its hardware watchdog restarted it (watchdog0 reports that it reset the machine). It stopped uncleanly 1 time in the last 7 days.',
    });
  });

  it('a crash record new since the last start: a kernel panic', async () => {
    expect(await listPstoreRecords([join(board('nuc-panic'), 'sys/fs/pstore'), join(board('systemd-pstore'), 'var/lib/systemd/pstore')])).toEqual([
      join(board('nuc-panic'), 'sys/fs/pstore/dmesg-efi-179647680001'),
      join(board('systemd-pstore'), 'var/lib/systemd/pstore/179647680001'),
    ]);
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const { previous } = await boot(data, 'boot-b', T0 + HOUR, 'nuc-panic');
    expect(previous.previous).toMatchObject({ ending: 'kernel-panic' });
    expect(judge(previous, T0 + HOUR + 5 * 60_000).reason).toBe(
      `The box started again 5 minutes ago after the system crashed with a kernel panic (a kernel crash record was left in ${join(board('nuc-panic'), 'sys/fs/pstore/dmesg-efi-179647680001')}). It stopped uncleanly 1 time in the last 7 days.`,
    );
  });

  it('a crash record already there at the last start is old news: not a panic', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0, 'nuc-panic');
    const { previous } = await boot(data, 'boot-b', T0 + HOUR, 'nuc-panic');
    expect(previous.previous?.ending).toBe('power-loss-or-hang');
  });

  it('the agent restarting within one boot changes nothing, and undoes a stop\'s mark', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const b1 = await boot(data, 'boot-b', T0 + HOUR);
    await b1.record.markCleanShutdown(); // e.g. `systemctl restart memu-agent` marked it
    const b2 = await boot(data, 'boot-b', T0 + 2 * HOUR);
    expect(b2.previous).toEqual(b1.previous);
    const file = JSON.parse(await readFile(join(data, 'agent/boot-record.json'), 'utf8'));
    expect(file.boots.map((b: { bootId: string }) => b.bootId)).toEqual(['boot-a', 'boot-b']);
    expect(file.boots[1].cleanShutdownAt).toBeUndefined();
    // …so if the box then loses power, that boot counts as unclean.
    const { previous } = await boot(data, 'boot-c', T0 + 3 * HOUR);
    expect(previous.previous).toMatchObject({ bootId: 'boot-b', ending: 'power-loss-or-hang' });
  });

  it('three unclean stops in 7 days are unhealthy; older ones fall out of the window', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    await boot(data, 'boot-b', T0 + DAY);
    await boot(data, 'boot-c', T0 + 3 * DAY, 'qemu-watchdog-reset');
    const d = await boot(data, 'boot-d', T0 + 5 * DAY);
    await d.record.markCleanShutdown();
    const { previous } = await boot(data, 'boot-e', T0 + 6 * DAY);
    expect(previous.uncleanEndings.map((e) => e.ending)).toEqual(['power-loss-or-hang', 'watchdog-reset', 'power-loss-or-hang']);
    expect(judge(previous, T0 + 6 * DAY)).toMatchObject({
      status: 'unhealthy',
      reason:
        'The box stopped without shutting down properly 3 times in the last 7 days; the latest, found 24 hours ago: it lost power, or froze, without shutting down properly.',
      action:
        'Check the power supply and its cable (use the official one), make sure the box is not too hot, and tell support if it keeps happening: every unclean stop risks the data being written.',
    });
    // The first was found at T0 + 1 day; a week after that only two remain.
    expect(judge(previous, T0 + 8 * DAY)).toMatchObject({ status: 'ok', reason: 'The box last shut down cleanly; it stopped uncleanly 2 times in the last 7 days.' });
  });

  it('a damaged record is replaced, with a log line, and the agent starts', async () => {
    const data = await tempDir();
    await mkdir(join(data, 'agent'));
    await writeFile(join(data, 'agent/boot-record.json'), '{"version":1,"boo');
    const warn = vi.fn();
    const procDir = await tempDir();
    await mkdir(join(procDir, 'sys/kernel/random'), { recursive: true });
    await writeFile(join(procDir, 'sys/kernel/random/boot_id'), 'boot-a\n');
    const record = createBootRecord({ dataDir: data, procDir, sysDir: '/nonexistent', pstoreDirs: [], now: () => new Date(T0), log: { warn } as never });
    expect((await record.start()).previous).toBeUndefined();
    expect(warn).toHaveBeenCalledOnce();
  });

  it('the check starts the record itself if nobody has, and re-judges with the clock', async () => {
    const data = await tempDir();
    await boot(data, 'boot-a', T0);
    const procDir = await tempDir();
    await mkdir(join(procDir, 'sys/kernel/random'), { recursive: true });
    await writeFile(join(procDir, 'sys/kernel/random/boot_id'), 'boot-b\n');
    const record = createBootRecord({ dataDir: data, procDir, sysDir: join(board('qemu-watchdog-reset'), 'sys'), pstoreDirs: [], now: () => new Date(T0 + HOUR) });
    let now = T0 + HOUR;
    const check = createPreviousBootCheck({ bootRecord: record, now: () => new Date(now) });
    expect((await check.run())[0]!.status).toBe('degraded');
    now = T0 + HOUR + DAY;
    expect((await check.run())[0]!.status).toBe('ok');
    const file = JSON.parse(await readFile(join(data, 'agent/boot-record.json'), 'utf8'));
    expect(file.boots).toHaveLength(2);
  });
});
