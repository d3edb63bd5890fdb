import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { CheckResult, HealthCheck } from '../../../../agent/health/index.ts';
import { createHealthMonitor, type StatusHistory } from '../../../../agent/health/health-monitor.ts';

const log = pino({ level: 'silent' });

/** A history in memory that keeps "since" per result name, as the persisted one does. */
function memoryHistory(): StatusHistory & { flushes: number } {
  const seen = new Map<string, { status: string; since: number }>();
  return {
    flushes: 0,
    observe(r, now) {
      const known = seen.get(r.check);
      if (known?.status === r.status) return { since: known.since, changed: false };
      seen.set(r.check, { status: r.status, since: now });
      return { since: now, changed: true };
    },
    async flush() {
      this.flushes++;
    },
  };
}

const result = (check: string, status: CheckResult['status']): CheckResult => ({ check, status, reason: `${check} is ${status}`, metrics: [] });

describe('the health monitor', () => {
  it('runs each check on its own interval and keeps since when each status has held', async () => {
    let clock = 1_000_000;
    let diskStatus: CheckResult['status'] = 'ok';
    const runs = { disk: 0, smart: 0 };
    const checks: HealthCheck[] = [
      { name: 'disk', intervalMs: 15_000, run: async () => (runs.disk++, [result('data-disk-space', diskStatus)]) },
      { name: 'smart', intervalMs: 3_600_000, run: async () => (runs.smart++, [result('nvme-smart', 'ok')]) },
    ];
    const history = memoryHistory();
    const monitor = createHealthMonitor({ checks, history, now: () => clock }, log);
    await monitor.round({ all: true });
    clock += 15_000;
    diskStatus = 'degraded';
    await monitor.round();
    clock += 15_000;
    await monitor.round();
    expect(runs).toEqual({ disk: 3, smart: 1 });
    const disk = monitor.results().find((r) => r.check === 'data-disk-space')!;
    expect(disk).toMatchObject({ status: 'degraded', since: 1_015_000, checkedAt: 1_030_000 });
    expect(history.flushes).toBe(3);
    expect(monitor.lastRoundAt()).toBe(1_030_000);
  });

  it('turns a check that throws into a degraded result naming it, and replaces a check\'s earlier results', async () => {
    let disks = ['nvme0', 'nvme1'];
    let broken = false;
    const checks: HealthCheck[] = [
      { name: 'smart', intervalMs: 0, run: async () => disks.map((d) => result(`nvme-smart-${d}`, 'ok')) },
      { name: 'temperature', intervalMs: 0, run: async () => { if (broken) throw new Error('thermal_zone0 vanished'); return [result('temperature', 'ok')]; } },
    ];
    const monitor = createHealthMonitor({ checks, history: memoryHistory() }, log);
    await monitor.round();
    disks = ['nvme0'];
    broken = true;
    await monitor.round();
    expect(monitor.results().map((r) => [r.check, r.status])).toEqual([
      ['nvme-smart-nvme0', 'ok'],
      ['temperature', 'degraded'],
    ]);
    expect(monitor.results()[1]!.reason).toBe('The temperature check could not run: thermal_zone0 vanished');
  });

  it('hands every round\'s results to its listeners (the repairs)', async () => {
    const seen: string[][] = [];
    const monitor = createHealthMonitor(
      { checks: [{ name: 'disk', intervalMs: 0, run: async () => [result('data-disk-space', 'unhealthy')] }], history: memoryHistory(), listeners: [{ afterRound: async (r) => void seen.push(r.map((x) => x.status)) }] },
      log,
    );
    await monitor.round();
    expect(seen).toEqual([['unhealthy']]);
  });

  it('spends nothing on a tick when no check is due: no listener runs and the round count stays, yet the monitor counts as alive', async () => {
    let now = 1_000_000;
    let afterRounds = 0;
    const monitor = createHealthMonitor(
      { checks: [{ name: 'docker', intervalMs: 30_000, run: async () => [result('docker-responsive', 'ok')] }], history: memoryHistory(), listeners: [{ afterRound: async () => void afterRounds++ }], now: () => now },
      log,
    );
    await monitor.round();
    now += 15_000;
    await monitor.round();
    expect([afterRounds, monitor.cost().rounds, monitor.lastRoundAt()]).toEqual([1, 1, 1_015_000]);
    now += 15_000;
    await monitor.round();
    expect([afterRounds, monitor.cost().rounds, monitor.lastRoundAt()]).toEqual([2, 2, 1_030_000]);
  });
});
