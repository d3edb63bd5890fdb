import { describe, expect, it } from 'vitest';
import { describeStatus, reportServices, secondsUntil } from '../../../../agent/stack/service-status.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

describe('service status wording', () => {
  it('counts down "restarting in N s" while a service backs off', () => {
    const status = { state: 'backing-off', exitCode: 3, restarts: 2, nextRetryAt: T0 + 20_000 } as const;
    expect(describeStatus('flaky', status, T0)).toBe('flaky exited with code 3; restarting in 20 s');
    expect(describeStatus('flaky', status, T0 + 2_500)).toBe('flaky exited with code 3; restarting in 18 s');
    expect(describeStatus('flaky', status, T0 + 25_000)).toBe('flaky exited with code 3; restarting in 0 s');
  });

  it('says crash-looping, with the restarts and until when it is left alone, only for the crash-looping state', () => {
    const looping = { state: 'crash-looping', exitCode: 3, restarts: 10, nextRetryAt: T0 + 30 * 60_000 } as const;
    expect(describeStatus('flaky', looping, T0)).toBe('flaky is crash-looping (exit code 3, restarted 10 times; left alone until 2026-01-01T00:30:00.000Z)');
    const backingOff = { state: 'backing-off', exitCode: 3, restarts: 9, nextRetryAt: T0 + 5 * 60_000 } as const;
    expect(describeStatus('flaky', backingOff, T0)).not.toContain('crash-looping');
  });

  it('words an unhealthy service with its restart countdown or its loop breaker', () => {
    expect(describeStatus('db', { state: 'unhealthy', containerId: 'x', restarts: 0, loopBreaker: false }, T0)).toBe('db is unhealthy');
    expect(describeStatus('db', { state: 'unhealthy', containerId: 'x', restarts: 1, loopBreaker: false, nextRetryAt: T0 + 8_000 }, T0)).toBe(
      'db is unhealthy; restarting in 8 s',
    );
    expect(describeStatus('db', { state: 'unhealthy', containerId: 'x', restarts: 10, loopBreaker: true, nextRetryAt: T0 + 60_000 }, T0)).toBe(
      'db is unhealthy; restarted 10 times, left alone until 2026-01-01T00:01:00.000Z',
    );
  });

  it('gives every reported service its summary, worded at the time asked', () => {
    const services = { web: { state: 'running', containerId: 'w' }, flaky: { state: 'backing-off', exitCode: 1, restarts: 1, nextRetryAt: T0 + 10_000 } } as const;
    expect(reportServices(services, T0 + 4_000)).toEqual({
      web: { state: 'running', containerId: 'w', summary: 'web is running' },
      flaky: { state: 'backing-off', exitCode: 1, restarts: 1, nextRetryAt: T0 + 10_000, summary: 'flaky exited with code 1; restarting in 6 s' },
    });
  });

  it('rounds the seconds up and never below zero', () => {
    expect(secondsUntil(T0 + 1, T0)).toBe(1);
    expect(secondsUntil(T0 + 1000, T0)).toBe(1);
    expect(secondsUntil(T0 - 5000, T0)).toBe(0);
  });
});
