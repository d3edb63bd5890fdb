import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { CheckResult, CheckStatus } from '../../../../../agent/health/checks/check.ts';
import { emptyHistory, healthHistory, loadHealthHistory, type HealthHistory } from '../../../../../agent/health/health-history.ts';
import { DAY, HOUR, MINUTE, type Repair, type RepairLimits } from '../../../../../agent/health/repairs/repair.ts';
import { createRepairer, historyView, limitDecision, planRepairs } from '../../../../../agent/health/repairs/repairer.ts';
import { REBOOT_LIMITS, rebootRepair } from '../../../../../agent/health/repairs/reboot.ts';
import { RESTART_DOCKER_LIMITS, restartDockerRepair } from '../../../../../agent/health/repairs/restart-docker.ts';
import { freeDiskSpaceRepair } from '../../../../../agent/health/repairs/free-disk-space.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });
const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

const result = (check: string, status: CheckStatus): CheckResult => ({ check, status, reason: `${check} is ${status}`, metrics: [] });

/** A history kept in memory only: its flush writes nothing. */
function memoryHistory(now = T0): HealthHistory {
  return { ...healthHistory('(memory)', emptyHistory(), now), flush: async () => false };
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** A history with these attempts of `repair` already made. */
function withAttempts(repair: string, times: number[], h = memoryHistory()): HealthHistory {
  for (const at of times) h.recordRepair({ repair, at, outcome: 'failed', message: 'did not help' });
  return h;
}

/** A repair that answers results of `check` with a status other than ok, and records its runs. */
function fakeRepair(name: string, check: string, limits: RepairLimits, runs: string[], extra: Partial<Repair> = {}): Repair {
  return {
    name,
    answers: (results) => results.some((r) => r.check === check && r.status !== 'ok'),
    limits,
    timeoutMs: 5_000,
    run: async () => {
      runs.push(name);
      return { ok: true, message: `${name} done` };
    },
    ...extra,
  };
}

const ONCE_AN_HOUR: RepairLimits = { minGapMs: 0, windows: [{ max: 1, windowMs: HOUR }] };

describe('limitDecision: the loop breaker', () => {
  const decide = (limits: RepairLimits, times: number[], now: number) => limitDecision('r', limits, historyView(withAttempts('r', times), now));

  it('lets a repair never tried run', () => {
    expect(decide(RESTART_DOCKER_LIMITS, [], T0)).toEqual({ repair: 'r', run: true });
  });

  it('holds a repair inside its minimum gap, until the gap has passed', () => {
    const limits: RepairLimits = { minGapMs: 15 * MINUTE, windows: [] };
    expect(decide(limits, [T0], T0 + 15 * MINUTE - 1)).toMatchObject({ run: false, retryAt: T0 + 15 * MINUTE, reason: 'tried 900 s ago; waits 900 s between attempts' });
    expect(decide(limits, [T0], T0 + 15 * MINUTE)).toEqual({ repair: 'r', run: true });
  });

  it('holds a repair at its window maximum until the oldest counted attempt leaves the window', () => {
    const limits: RepairLimits = { minGapMs: 0, windows: [{ max: 2, windowMs: HOUR }] };
    expect(decide(limits, [T0], T0 + MINUTE)).toEqual({ repair: 'r', run: true });
    expect(decide(limits, [T0, T0 + 10 * MINUTE], T0 + 20 * MINUTE)).toMatchObject({ run: false, retryAt: T0 + HOUR, reason: 'tried 2 times in the last hour (at most 2)' });
    expect(decide(limits, [T0, T0 + 10 * MINUTE], T0 + HOUR)).toEqual({ repair: 'r', run: true });
  });

  it('applies every window: Docker restarts, 2 an hour and 6 a day, 15 minutes apart', () => {
    const spaced = [0, 1, 2, 3, 4, 5].map((i) => T0 + i * 2 * HOUR);
    const now = T0 + 11 * HOUR;
    // Under the hourly limit, but the sixth of the day.
    expect(decide(RESTART_DOCKER_LIMITS, spaced, now)).toMatchObject({ run: false, retryAt: T0 + DAY, reason: 'tried 6 times in the last day (at most 6)' });
    expect(decide(RESTART_DOCKER_LIMITS, spaced, T0 + DAY)).toEqual({ repair: 'r', run: true });
    expect(decide(RESTART_DOCKER_LIMITS, [T0, T0 + 16 * MINUTE], T0 + 40 * MINUTE)).toMatchObject({ run: false, retryAt: T0 + HOUR });
  });

  it('holds reboots at 3 a day, 2 hours apart', () => {
    expect(decide(REBOOT_LIMITS, [T0], T0 + HOUR)).toMatchObject({ run: false, retryAt: T0 + 2 * HOUR });
    expect(decide(REBOOT_LIMITS, [T0, T0 + 3 * HOUR, T0 + 6 * HOUR], T0 + 9 * HOUR)).toMatchObject({ run: false, retryAt: T0 + DAY, reason: 'tried 3 times in the last day (at most 3)' });
    expect(decide(REBOOT_LIMITS, [T0, T0 + 3 * HOUR], T0 + 9 * HOUR)).toEqual({ repair: 'r', run: true });
  });
});

describe('planRepairs: which repairs a round calls for, in order', () => {
  const runs: string[] = [];
  const docker = fakeRepair('restart-docker', 'docker-responsive', ONCE_AN_HOUR, runs);
  const disk = fakeRepair('free-disk-space', 'data-disk-space', ONCE_AN_HOUR, runs);

  it('lists only the repairs the results call for, in the repairs\' order whatever the results\' order', () => {
    const results = [result('data-disk-space', 'degraded'), result('clock-sync', 'degraded'), result('docker-responsive', 'unhealthy')];
    expect(planRepairs([docker, disk], results, historyView(memoryHistory(), T0))).toEqual([
      { repair: 'restart-docker', run: true },
      { repair: 'free-disk-space', run: true },
    ]);
    expect(planRepairs([docker, disk], [result('data-disk-space', 'ok')], historyView(memoryHistory(), T0))).toEqual([]);
  });

  it('keeps a held repair in the plan with its reason, and lets the others run', () => {
    const h = withAttempts('restart-docker', [T0 - MINUTE]);
    const plan = planRepairs([docker, disk], [result('docker-responsive', 'unhealthy'), result('data-disk-space', 'unhealthy')], historyView(h, T0));
    expect(plan).toEqual([
      { repair: 'restart-docker', run: false, reason: 'tried 1 time in the last hour (at most 1)', retryAt: T0 - MINUTE + HOUR },
      { repair: 'free-disk-space', run: true },
    ]);
  });

  it('restarts Docker only once the check has said unhealthy for the set time, and prunes only while Docker answers', () => {
    const restart = restartDockerRepair({ socketPath: '/nonexistent.sock', unhealthyForMs: 50_000 });
    const prune = freeDiskSpaceRepair({ docker: {} as never, filesystems: [{ check: 'data-disk-space', path: '/', enough: { share: 0.1, bytes: 1e9 } }], currentStackLabel: () => undefined });
    const h = memoryHistory();
    const results = [result('docker-responsive', 'unhealthy'), result('data-disk-space', 'unhealthy')];
    h.observe(results[0]!, T0);
    expect(planRepairs([restart, prune], results, historyView(h, T0 + 49_999))).toEqual([]);
    expect(planRepairs([restart, prune], results, historyView(h, T0 + 50_000))).toEqual([{ repair: 'restart-docker', run: true }]);
    expect(planRepairs([restart, prune], [result('docker-responsive', 'ok'), result('data-disk-space', 'unhealthy')], historyView(h, T0))).toEqual([{ repair: 'free-disk-space', run: true }]);
  });

  it('reboots only after Docker\'s restarts were used up and the last had time to work', () => {
    const reboot = rebootRepair({ reboot: async () => {} });
    const unanswered = [result('docker-responsive', 'unhealthy')];
    const oneRestart = withAttempts('restart-docker', [T0]);
    expect(planRepairs([reboot], unanswered, historyView(oneRestart, T0 + 30 * MINUTE))).toEqual([]);
    const twoRestarts = withAttempts('restart-docker', [T0, T0 + 20 * MINUTE]);
    expect(planRepairs([reboot], unanswered, historyView(twoRestarts, T0 + 29 * MINUTE))).toEqual([]);
    expect(planRepairs([reboot], unanswered, historyView(twoRestarts, T0 + 30 * MINUTE))).toEqual([{ repair: 'reboot', run: true }]);
    expect(planRepairs([reboot], [result('docker-responsive', 'ok')], historyView(twoRestarts, T0 + 30 * MINUTE))).toEqual([]);
    const onReadOnly = rebootRepair({ reboot: async () => {}, alsoWhen: (results) => results.some((r) => r.check === 'filesystem-read-only' && r.status === 'unhealthy') });
    expect(planRepairs([onReadOnly], [result('filesystem-read-only', 'unhealthy')], historyView(memoryHistory(), T0))).toEqual([{ repair: 'reboot', run: true }]);
  });
});

describe('createRepairer: one round', () => {
  it('runs what the plan allows one at a time in order, and records each attempt with its outcome', async () => {
    const runs: string[] = [];
    let running = 0;
    const slow = (name: string, check: string): Repair =>
      fakeRepair(name, check, ONCE_AN_HOUR, runs, {
        run: async () => {
          expect(++running).toBe(1);
          await new Promise((r) => setTimeout(r, 20));
          running--;
          runs.push(name);
          return { ok: name !== 'b', message: `${name} said so`, ...(name === 'a' && { freedBytes: 42 }) };
        },
      });
    const h = memoryHistory();
    let now = T0;
    const repairer = createRepairer({ repairs: [slow('a', 'x'), slow('b', 'y'), slow('c', 'z')], history: h, log, now: () => now });
    const report = await repairer.round([result('z', 'degraded'), result('y', 'unhealthy'), result('x', 'degraded')]);
    expect(runs).toEqual(['a', 'b', 'c']);
    expect(report.ran.map((r) => [r.repair, r.outcome.ok])).toEqual([['a', true], ['b', false], ['c', true]]);
    expect(h.events().map((e) => e.kind === 'repair' && [e.repair, e.outcome, e.freedBytes])).toEqual([
      ['c', 'ok', undefined],
      ['b', 'failed', undefined],
      ['a', 'ok', 42],
    ]);
    // The loop breaker holds all three in the next round.
    now = T0 + 10 * MINUTE;
    const next = await repairer.round([result('x', 'degraded'), result('y', 'degraded'), result('z', 'degraded')]);
    expect(next.ran).toEqual([]);
    expect(repairer.lastDecisions().every((d) => !d.run)).toBe(true);
  });

  it('writes the attempt before running it, so a reboot that ends the agent still counts after the restart', async () => {
    const path = join(await tempDir('memu-repairer-'), 'health-history.json');
    const h = await loadHealthHistory(path, T0, log);
    let fileDuringRun = '';
    const reboot: Repair = {
      ...rebootRepair(),
      answers: () => true,
      run: async () => {
        fileDuringRun = await readFile(path, 'utf8');
        // The agent ends here: the outcome is never recorded.
        return new Promise(() => {});
      },
      timeoutMs: 50,
    };
    await createRepairer({ repairs: [reboot], history: h, log, now: () => T0 }).round([]);
    expect(JSON.parse(fileDuringRun).events[0]).toMatchObject({ kind: 'repair', repair: 'reboot', outcome: 'started' });
    // After the "reboot": the attempt counts for the limit, from the file.
    const afterReboot = await loadHealthHistory(path, T0 + 3 * HOUR, log);
    afterReboot.recordRepair({ repair: 'reboot', at: T0 + 3 * HOUR, outcome: 'started', message: 'started' });
    afterReboot.recordRepair({ repair: 'reboot', at: T0 + 6 * HOUR, outcome: 'started', message: 'started' });
    const plan = planRepairs([{ ...rebootRepair(), answers: () => true }], [], historyView(afterReboot, T0 + 9 * HOUR));
    expect(plan).toMatchObject([{ repair: 'reboot', run: false, retryAt: T0 + DAY }]);
  });

  it('records a repair that outlives its time bound as failed, and does not start it again while it still runs', async () => {
    let release: () => void = () => {};
    let starts = 0;
    const stuck: Repair = {
      name: 'stuck',
      answers: () => true,
      limits: { minGapMs: 0, windows: [] },
      timeoutMs: 30,
      run: () => {
        starts++;
        return new Promise((resolve) => (release = () => resolve({ ok: true, message: 'finally' })));
      },
    };
    const h = memoryHistory();
    let now = T0;
    const repairer = createRepairer({ repairs: [stuck], history: h, log, now: () => now });
    const first = await repairer.round([]);
    expect(first.ran[0]!.outcome).toEqual({ ok: false, message: 'did not finish within 0 s' });
    now += 1000;
    expect((await repairer.round([])).ran).toEqual([]);
    expect(starts).toBe(1);
    release();
    await new Promise((r) => setTimeout(r, 10));
    now += 1000;
    await repairer.round([]);
    expect(starts).toBe(2);
  });

  it('records a repair that throws as failed with its message', async () => {
    const h = memoryHistory();
    const throwing: Repair = { ...fakeRepair('t', 'x', ONCE_AN_HOUR, []), run: async () => Promise.reject(new Error('docker said no')) };
    const report = await createRepairer({ repairs: [throwing], history: h, log, now: () => T0 }).round([result('x', 'unhealthy')]);
    expect(report.ran[0]!.outcome).toEqual({ ok: false, message: 'the repair failed: docker said no' });
    expect(h.events()[0]).toMatchObject({ repair: 't', outcome: 'failed', message: 'the repair failed: docker said no' });
  });

  it('neither runs nor counts a repair whose look at the device finds nothing to do', async () => {
    const runs: string[] = [];
    const h = memoryHistory();
    const idle = fakeRepair('idle', 'x', ONCE_AN_HOUR, runs, { needed: async () => false });
    await createRepairer({ repairs: [idle], history: h, log, now: () => T0 }).round([result('x', 'degraded')]);
    expect(runs).toEqual([]);
    expect(h.attemptsSince('idle', 0)).toBe(0);
    expect(h.events()).toEqual([]);
  });

  it('plans again before each repair: a Docker restart made this round is counted before the reboot is decided', async () => {
    const order: string[] = [];
    const h = withAttempts('restart-docker', [T0 - 40 * MINUTE]);
    h.observe(result('docker-responsive', 'unhealthy'), T0 - HOUR);
    const restart = { ...restartDockerRepair({ socketPath: '/nonexistent.sock', restart: async () => {}, unhealthyForMs: 0 }), run: async () => (order.push('restart-docker'), { ok: false, message: 'still silent' }) };
    const reboot = rebootRepair({ reboot: async () => void order.push('reboot') });
    const repairer = createRepairer({ repairs: [restart, reboot], history: h, log, now: () => T0 });
    await repairer.round([result('docker-responsive', 'unhealthy')]);
    // The second restart was just made: the reboot waits for it to have had time to work.
    expect(order).toEqual(['restart-docker']);
    const later = createRepairer({ repairs: [restart, reboot], history: h, log, now: () => T0 + 11 * MINUTE });
    await later.round([result('docker-responsive', 'unhealthy')]);
    expect(order).toEqual(['restart-docker', 'reboot']);
  });

  it('as the monitor\'s listener, returns at once and runs only the latest results that came during a slow round', async () => {
    const seen: string[] = [];
    let finish: () => void = () => {};
    const slow: Repair = {
      name: 'slow',
      answers: () => true,
      limits: { minGapMs: 0, windows: [] },
      timeoutMs: 5_000,
      run: (results) => {
        seen.push(results.map((r) => r.reason).join());
        return new Promise((resolve) => (finish = () => resolve({ ok: true, message: 'done' })));
      },
    };
    let now = T0;
    const repairer = createRepairer({ repairs: [slow], history: memoryHistory(), log, now: () => now++ });
    await repairer.afterRound([{ ...result('x', 'degraded'), reason: 'round 1' }]);
    await repairer.afterRound([{ ...result('x', 'degraded'), reason: 'round 2' }]);
    await repairer.afterRound([{ ...result('x', 'degraded'), reason: 'round 3' }]);
    await new Promise((r) => setTimeout(r, 10));
    expect(seen).toEqual(['round 1']);
    finish();
    await until(() => seen.length === 2);
    expect(seen).toEqual(['round 1', 'round 3']);
    finish();
  });
});
