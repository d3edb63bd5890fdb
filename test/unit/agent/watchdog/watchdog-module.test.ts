import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LivenessProbe } from '../../../../agent/module.ts';
import { createWatchdogModule, systemdWatchdogUsec } from '../../../../agent/watchdog/index.ts';

const log = pino({ level: 'silent' });
afterEach(() => vi.useRealTimers());

describe('the agent\'s systemd watchdog', () => {
  it('pings at half the watchdog time while every module is alive, and withholds pings while one is not', async () => {
    vi.useFakeTimers();
    let healthAlive: true | string = true;
    const probes: LivenessProbe[] = [{ name: 'http', alive: () => true }, { name: 'health-rounds', alive: () => healthAlive }];
    const ping = vi.fn(async () => undefined);
    const watchdog = createWatchdogModule({ watchdogUsec: 30_000_000, probes, ping }, log);
    await watchdog.start();
    expect(ping).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(ping).toHaveBeenCalledTimes(2);
    healthAlive = 'no health round has finished for 130 s';
    await vi.advanceTimersByTimeAsync(45_000);
    expect(ping).toHaveBeenCalledTimes(2);
    expect(watchdog.check()).toEqual({ alive: false, failing: [{ probe: 'health-rounds', reason: 'no health round has finished for 130 s' }] });
    healthAlive = true;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(ping).toHaveBeenCalledTimes(3);
    await watchdog.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(ping).toHaveBeenCalledTimes(3);
  });

  it('does nothing without a watchdog from systemd', async () => {
    const ping = vi.fn(async () => undefined);
    const watchdog = createWatchdogModule({ watchdogUsec: undefined, probes: [], ping }, log);
    await watchdog.start();
    await watchdog.stop();
    expect(ping).not.toHaveBeenCalled();
  });

  it('takes WATCHDOG_USEC only when systemd set it for this process', () => {
    expect(systemdWatchdogUsec({ WATCHDOG_USEC: '30000000' }, 42)).toBe(30_000_000);
    expect(systemdWatchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, 42)).toBe(30_000_000);
    expect(systemdWatchdogUsec({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, 42)).toBeUndefined();
    expect(systemdWatchdogUsec({}, 42)).toBeUndefined();
    expect(systemdWatchdogUsec({ WATCHDOG_USEC: 'soon' }, 42)).toBeUndefined();
  });
});
