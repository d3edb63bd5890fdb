import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { askNtpSynchronized, createClockCheck, evaluateClock, readClockFacts, type ClockFacts } from '../../../../../agent/health/checks/clock-sync.ts';
import type { CommandOutcome } from '../../../../../shared/process/run-command.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const NOW = Date.UTC(2026, 11, 5, 12);
/** The image's SOURCE_DATE_EPOCH in these tests: 1 Dec 2026. */
const BUILT = Date.UTC(2026, 11, 1) / 1000;
const MIN = 60_000;
const HOUR = 3600_000;

const outcome = (stdout: string, code = 0, stderr = ''): CommandOutcome => ({ code, signal: null, stdout, stdoutBytes: Buffer.from(stdout), stderr, truncated: false });

/** A fake timedatectl that records its calls. */
function timedatectl(answer: CommandOutcome) {
  const calls: string[][] = [];
  const run = async (cmd: string, args: readonly string[]) => {
    calls.push([cmd, ...args]);
    return answer;
  };
  return { run, calls };
}

describe('evaluateClock', () => {
  const facts = (f: Partial<ClockFacts>): ClockFacts => ({ now: NOW, uptimeSeconds: 3 * 3600, notBefore: BUILT, ...f });

  it('is ok when timesyncd synchronised recently, with node-exporter metrics', () => {
    const [r] = evaluateClock(facts({ lastSyncAt: NOW - 20 * MIN }));
    expect(r).toEqual({
      check: 'clock-sync',
      status: 'ok',
      reason: 'The clock is set from the internet.',
      metrics: [
        { name: 'node_timex_sync_status', help: expect.any(String), type: 'gauge', value: 1 },
        { name: 'node_time_seconds', help: expect.any(String), type: 'gauge', value: NOW / 1000 },
        { name: 'memu_timesync_last_sync_timestamp_seconds', help: expect.any(String), type: 'gauge', value: (NOW - 20 * MIN) / 1000 },
      ],
    });
  });

  it('a box that never synchronised is degraded, not unhealthy, and says why the time matters', () => {
    const [r] = evaluateClock(facts({ ntpSynchronized: false }));
    expect(r).toMatchObject({
      status: 'degraded',
      reason: 'The clock has not been set from the internet since the box started 3 hours ago; secure connections and remote access (Tailscale) need the right time.',
      action: "Check the box's network cable or Wi-Fi: it sets its clock as soon as it reaches the internet.",
    });
    expect(r!.metrics[0]).toMatchObject({ name: 'node_timex_sync_status', value: 0 });
  });

  it('a sync older than 6 hours is trusted only if the kernel still says synchronised', () => {
    expect(evaluateClock(facts({ lastSyncAt: NOW - 6 * HOUR + 1 }))[0]!.status).toBe('ok');
    expect(evaluateClock(facts({ lastSyncAt: NOW - 6 * HOUR }))[0]).toMatchObject({
      status: 'degraded',
      reason: 'The clock was last set from the internet 6 hours ago; secure connections and remote access (Tailscale) need the right time.',
    });
    expect(evaluateClock(facts({ lastSyncAt: NOW - 3 * 24 * HOUR, ntpSynchronized: false }))[0]!.reason).toMatch(/^The clock was last set from the internet 3 days ago;/);
    expect(evaluateClock(facts({ lastSyncAt: NOW - 3 * 24 * HOUR, ntpSynchronized: true }))[0]!.status).toBe('ok');
  });

  it('expects no sync in the first 10 minutes after boot', () => {
    expect(evaluateClock(facts({ uptimeSeconds: 9 * 60 + 59 }))[0]).toMatchObject({ status: 'ok', reason: 'The clock has not been set from the internet yet; the box started 9 minutes ago.' });
    expect(evaluateClock(facts({ uptimeSeconds: 10 * 60 }))[0]!.status).toBe('degraded');
  });

  it('a clock before the build date is unhealthy, synchronised or not', () => {
    const early = Date.UTC(2025, 0, 1);
    expect(evaluateClock(facts({ now: early }))[0]).toMatchObject({
      status: 'unhealthy',
      reason: 'The clock says 1 Jan 2025, before this system was made (1 Dec 2026); secure connections and remote access (Tailscale) need the right time.',
      action: 'Connect the box to the internet: it sets its clock as soon as it can reach a time server.',
    });
    expect(evaluateClock(facts({ now: BUILT * 1000, lastSyncAt: BUILT * 1000 }))[0]!.status).toBe('ok');
    expect(evaluateClock(facts({ now: BUILT * 1000 - 1, lastSyncAt: BUILT * 1000 - 1 }))[0]!.status).toBe('unhealthy');
  });
});

describe('reading the clock facts', () => {
  const procDir = fileURLToPath(new URL('../../../../fixtures/health/clock-sync/debian-host-proc/', import.meta.url));

  it("reads timesyncd's file time and asks timedated only when the file says nothing recent", async () => {
    const runDir = await tempDir('memu-run-');
    const fake = timedatectl(outcome('no\n'));
    const opts = { procDir, runDir, notBefore: BUILT, run: fake.run, now: () => NOW };

    expect(await readClockFacts(opts)).toEqual({ now: NOW, uptimeSeconds: 14078.3, notBefore: BUILT, ntpSynchronized: false });
    expect(fake.calls).toEqual([['timedatectl', 'show', '-p', 'NTPSynchronized', '--value']]);

    const file = join(runDir, 'systemd', 'timesync', 'synchronized');
    await mkdir(join(runDir, 'systemd', 'timesync'), { recursive: true });
    await writeFile(file, '');
    await utimes(file, (NOW - 20 * MIN) / 1000, (NOW - 20 * MIN) / 1000);
    expect(await readClockFacts(opts)).toEqual({ now: NOW, uptimeSeconds: 14078.3, notBefore: BUILT, lastSyncAt: NOW - 20 * MIN });
    expect(fake.calls).toHaveLength(1);

    await utimes(file, (NOW - 7 * HOUR) / 1000, (NOW - 7 * HOUR) / 1000);
    expect((await readClockFacts(opts)).ntpSynchronized).toBe(false);
    expect(fake.calls).toHaveLength(2);
  });

  it("takes timedatectl's yes and no, and nothing when it cannot answer", async () => {
    expect(await askNtpSynchronized(timedatectl(outcome('yes\n')).run)).toBe(true);
    expect(await askNtpSynchronized(timedatectl(outcome('no\n')).run)).toBe(false);
    expect(await askNtpSynchronized(timedatectl(outcome('', 1, 'System has not been booted with systemd as init system (PID 1). Can\'t operate.\n')).run)).toBeUndefined();
  });

  it('asks timedated at most every 15 minutes while timesyncd says nothing fresh (each ask forks a process)', async () => {
    let now = NOW;
    const fake = timedatectl(outcome('no\n'));
    const check = createClockCheck({ procDir, runDir: await tempDir('memu-run-'), notBefore: BUILT, run: fake.run, now: () => now });
    for (let minute = 0; minute <= 60; minute += 5) {
      now = NOW + minute * MIN;
      expect((await check.run()).map((r) => r.status), `minute ${minute}`).toEqual(['degraded']);
    }
    // Minutes 0, 15, 30, 45 and 60.
    expect(fake.calls).toHaveLength(5);
  });

  it('a check every 5 minutes joins both', async () => {
    const check = createClockCheck({ procDir, runDir: await tempDir('memu-run-'), notBefore: BUILT, run: timedatectl(outcome('yes\n')).run, now: () => NOW });
    expect(check.intervalMs).toBe(5 * MIN);
    expect((await check.run()).map((r) => [r.check, r.status])).toEqual([['clock-sync', 'ok']]);
  });
});
