import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_RETENTION_MS, HISTORY_EVENT_LIMIT, loadHealthHistory } from '../../../../agent/health/health-history.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0);

/** A logger that keeps what was logged, to see that a bad file is said, not swallowed. */
function recordingLog() {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { log, lines };
}

async function historyPath() {
  return join(await tempDir('memu-health-history-'), 'agent', 'health-history.json');
}

describe('health history', () => {
  it('keeps each check since when it has its status, and the transitions, across a reload', async () => {
    const path = await historyPath();
    const { log } = recordingLog();
    const h = await loadHealthHistory(path, T0, log);
    expect(h.observe({ check: 'data-disk-space', status: 'ok', reason: '20 GB free' }, T0)).toEqual({ since: T0, changed: true });
    expect(h.observe({ check: 'data-disk-space', status: 'ok', reason: '19 GB free' }, T0 + 60_000)).toEqual({ since: T0, changed: false });
    expect(h.observe({ check: 'data-disk-space', status: 'degraded', reason: '1 GB free' }, T0 + 120_000)).toEqual({ since: T0 + 120_000, changed: true });
    h.recordRepair({ repair: 'free-disk-space', at: T0 + 130_000, outcome: 'ok', message: 'freed 2 GB', freedBytes: 2e9 });
    expect(await h.flush()).toBe(true);

    const again = await loadHealthHistory(path, T0 + 200_000, log);
    expect(again.checks()['data-disk-space']).toEqual({ status: 'degraded', since: T0 + 120_000, reason: '1 GB free' });
    expect(again.observe({ check: 'data-disk-space', status: 'degraded', reason: '0.9 GB free' }, T0 + 210_000)).toEqual({ since: T0 + 120_000, changed: false });
    expect(again.events()).toEqual([
      { kind: 'repair', repair: 'free-disk-space', at: T0 + 130_000, outcome: 'ok', message: 'freed 2 GB', freedBytes: 2e9 },
      { kind: 'transition', check: 'data-disk-space', from: 'ok', to: 'degraded', at: T0 + 120_000, reason: '1 GB free' },
    ]);
    expect(again.attemptsSince('free-disk-space', T0)).toBe(1);
    expect(again.lastAttempt('free-disk-space')).toBe(T0 + 130_000);
  });

  it('records a check first seen unwell as a transition, one first seen well not', async () => {
    const h = await loadHealthHistory(await historyPath(), T0, recordingLog().log);
    h.observe({ check: 'clock-sync', status: 'ok', reason: 'synchronised' }, T0);
    h.observe({ check: 'docker-responsive', status: 'unhealthy', reason: 'no answer' }, T0);
    expect(h.events()).toEqual([{ kind: 'transition', check: 'docker-responsive', to: 'unhealthy', at: T0, reason: 'no answer' }]);
  });

  it('writes only when something changed: a reason whose numbers move is written with the next change', async () => {
    const path = await historyPath();
    const h = await loadHealthHistory(path, T0, recordingLog().log);
    expect(await h.flush()).toBe(false);
    h.observe({ check: 'data-disk-space', status: 'ok', reason: '20 GB free' }, T0);
    expect(await h.flush()).toBe(true);
    const written = await stat(path);
    h.observe({ check: 'data-disk-space', status: 'ok', reason: '19 GB free' }, T0 + 60_000);
    expect(await h.flush()).toBe(false);
    expect((await stat(path)).mtimeMs).toBe(written.mtimeMs);
    h.observe({ check: 'clock-sync', status: 'degraded', reason: 'not synchronised' }, T0 + 60_000);
    expect(await h.flush()).toBe(true);
    const file = JSON.parse(await readFile(path, 'utf8')) as { checks: Record<string, { reason: string }> };
    expect(file.checks['data-disk-space']!.reason).toBe('19 GB free');
    // Written through the crash-safe writer: no temporary file left beside it.
    expect(await readdir(join(path, '..'))).toEqual(['health-history.json']);
  });

  it(`keeps at most ${HISTORY_EVENT_LIMIT} events, newest first, and the loop breakers' attempts apart from them`, async () => {
    const path = await historyPath();
    const h = await loadHealthHistory(path, T0, recordingLog().log);
    h.recordRepair({ repair: 'reboot', at: T0, outcome: 'started', message: 'started' });
    for (let i = 1; i <= HISTORY_EVENT_LIMIT + 20; i++) {
      h.observe({ check: 'memory-pressure', status: i % 2 ? 'degraded' : 'ok', reason: `round ${i}` }, T0 + i * 1000);
    }
    await h.flush();
    const again = await loadHealthHistory(path, T0 + 1e6, recordingLog().log);
    const events = again.events();
    expect(events).toHaveLength(HISTORY_EVENT_LIMIT);
    expect(events[0]).toMatchObject({ reason: `round ${HISTORY_EVENT_LIMIT + 20}` });
    expect(events.at(-1)).toMatchObject({ reason: 'round 21' });
    expect(events.some((e) => e.kind === 'repair')).toBe(false);
    // The reboot fell out of the events but still counts for its loop breaker.
    expect(again.attemptsSince('reboot', T0 - 1)).toBe(1);
    expect(again.events(3)).toHaveLength(3);
  });

  it('counts a started attempt and its outcome as one attempt', async () => {
    const h = await loadHealthHistory(await historyPath(), T0, recordingLog().log);
    h.recordRepair({ repair: 'restart-docker', at: T0, outcome: 'started', message: 'started' });
    h.recordRepair({ repair: 'restart-docker', at: T0, outcome: 'ok', message: 'Docker answers again' });
    expect(h.attemptsSince('restart-docker', 0)).toBe(1);
    expect(h.events()).toEqual([{ kind: 'repair', repair: 'restart-docker', at: T0, outcome: 'ok', message: 'Docker answers again' }]);
  });

  it('forgets attempts older than the retention when loaded', async () => {
    const path = await historyPath();
    const h = await loadHealthHistory(path, T0, recordingLog().log);
    h.recordRepair({ repair: 'reboot', at: T0, outcome: 'ok', message: 'rebooted' });
    h.recordRepair({ repair: 'reboot', at: T0 + ATTEMPT_RETENTION_MS, outcome: 'ok', message: 'rebooted' });
    await h.flush();
    const later = await loadHealthHistory(path, T0 + ATTEMPT_RETENTION_MS + 1, recordingLog().log);
    expect(later.attemptTimes('reboot', 0)).toEqual([T0 + ATTEMPT_RETENTION_MS]);
  });

  it('starts empty, saying so, from a torn file, a file of another form, or none, and writes a good one next', async () => {
    const path = await historyPath();
    const missing = recordingLog();
    const fresh = await loadHealthHistory(path, T0, missing.log);
    expect(fresh.events()).toEqual([]);
    expect(missing.lines.map((l) => l.msg)).toContain('no health history yet; starting a new one');

    fresh.observe({ check: 'docker-responsive', status: 'unhealthy', reason: 'no answer' }, T0);
    await fresh.flush();
    const whole = await readFile(path, 'utf8');
    await writeFile(path, whole.slice(0, Math.floor(whole.length / 2)));
    const torn = recordingLog();
    const fromTorn = await loadHealthHistory(path, T0, torn.log);
    expect(fromTorn.events()).toEqual([]);
    expect(torn.lines.find((l) => l.level === 40)?.msg).toBe('the health history could not be read (torn or damaged); starting a new one');
    fromTorn.observe({ check: 'docker-responsive', status: 'ok', reason: 'answered' }, T0);
    await fromTorn.flush();
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ format: 'memu-health-history/1' });

    await writeFile(path, JSON.stringify({ format: 'memu-health-history/1', checks: [], events: 'x' }));
    const wrong = recordingLog();
    expect((await loadHealthHistory(path, T0, wrong.log)).checks()).toEqual({});
    expect(wrong.lines.find((l) => l.level === 40)?.msg).toBe('the health history is not in the expected form; starting a new one');
  });

  it('writes flushes one after another, the last state last', async () => {
    const path = await historyPath();
    const h = await loadHealthHistory(path, T0, recordingLog().log);
    h.observe({ check: 'a', status: 'degraded', reason: 'first' }, T0);
    const first = h.flush();
    h.observe({ check: 'a', status: 'unhealthy', reason: 'second' }, T0 + 1);
    const second = h.flush();
    expect(await Promise.all([first, second])).toEqual([true, false]);
    expect(JSON.parse(await readFile(path, 'utf8')).checks.a.status).toBe('unhealthy');
  });
});
