import { describe, expect, it } from 'vitest';
import type { ReportedStackStatus } from '../../../../agent/stack/reconciler.ts';
import { reportServices, type ServiceStatus } from '../../../../agent/stack/service-status.ts';
import { stackHealthReasons, stackMetrics } from '../../../../agent/stack/stack-health.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function stack(services: Record<string, ServiceStatus>, extra: Partial<ReportedStackStatus> = {}): ReportedStackStatus {
  return { loop: 'running', converged: false, services: reportServices(services, T0), ...extra };
}

describe('what the stack tells /healthz is wrong', () => {
  it('nothing while services run, start, wait, back off or are being created', () => {
    expect(
      stackHealthReasons(
        stack({
          web: { state: 'running', containerId: 'w' },
          db: { state: 'healthy', containerId: 'd' },
          api: { state: 'starting', containerId: 'a' },
          app: { state: 'waiting', for: ['db'], reason: 'db is not healthy yet' },
          flaky: { state: 'backing-off', exitCode: 3, restarts: 2, nextRetryAt: T0 + 20_000 },
          new: { state: 'pending', reason: 'being created' },
          once: { state: 'exited', exitCode: 0 },
        }),
        T0,
      ),
    ).toEqual([]);
  });

  it('a service the kernel killed for memory, by name, from its first time: out of memory is never routine', () => {
    expect(stackHealthReasons(stack({ photos: { state: 'backing-off', exitCode: 137, outOfMemory: true, restarts: 1, nextRetryAt: T0 + 9_000 } }), T0)).toEqual([
      { source: 'stack', code: 'service-out-of-memory', message: 'service photos ran out of memory and was stopped by the kernel (exit code 137); restarting in 9 s' },
    ]);
    expect(stackHealthReasons(stack({ photos: { state: 'backing-off', exitCode: 137, outOfMemory: true, restarts: 4, nextRetryAt: T0 + 9_000 } }), T0)).toEqual([
      { source: 'stack', code: 'service-restarting', message: 'service photos keeps exiting (code 137, out of memory, restarted 4 times); restarting in 9 s' },
    ]);
  });

  it('a crash-looping, an unhealthy and a failing service, each by name', () => {
    const reasons = stackHealthReasons(
      stack({
        flaky: { state: 'crash-looping', exitCode: 3, restarts: 10, nextRetryAt: T0 + 30 * 60_000 },
        db: { state: 'unhealthy', containerId: 'd', restarts: 1, loopBreaker: false, nextRetryAt: T0 + 10_000 },
        photos: { state: 'error', reason: 'service photos: image x (y) is not on this device' },
      }),
      T0,
    );
    expect(reasons).toEqual([
      {
        source: 'stack',
        code: 'service-crash-looping',
        message: 'service flaky is crash-looping (exit code 3, restarted 10 times; left alone until 2026-01-01T00:30:00.000Z)',
        status: 'unhealthy',
      },
      { source: 'stack', code: 'service-unhealthy', message: 'service db is unhealthy; restarting in 10 s' },
      { source: 'stack', code: 'service-error', message: 'service photos has an error: service photos: image x (y) is not on this device', status: 'unhealthy' },
    ]);
  });

  it('a service that keeps exiting, from its third restart in a row, with the countdown', () => {
    const third = stack({ flaky: { state: 'backing-off', exitCode: 1, restarts: 3, nextRetryAt: T0 + 40_000 } });
    expect(stackHealthReasons(third, T0)).toEqual([{ source: 'stack', code: 'service-restarting', message: 'service flaky keeps exiting (code 1, restarted 3 times); restarting in 40 s' }]);
  });

  it('a stack that cannot be loaded, apart from one that cannot be reconciled', () => {
    const unloadable = stack({}, { error: '/usr/lib/memu/stack/stack.yml: service "app": key "privileged" is not supported', errorStage: 'load-desired' });
    expect(stackHealthReasons(unloadable, T0)).toEqual([
      { source: 'stack', code: 'stack-unloadable', message: 'the stack could not be loaded: /usr/lib/memu/stack/stack.yml: service "app": key "privileged" is not supported' },
    ]);
    const dockerDown = stack({ web: { state: 'running', containerId: 'w' } }, { error: 'reconcile failed: connect ENOENT /var/run/docker.sock', errorStage: 'read-current' });
    expect(stackHealthReasons(dockerDown, T0)).toEqual([
      { source: 'stack', code: 'stack-unreconciled', message: 'the stack could not be reconciled: reconcile failed: connect ENOENT /var/run/docker.sock' },
    ]);
  });
});

describe('what the stack gives the fleet\'s metrics', () => {
  it('each service\'s current state as 1 and its restarts in the window', () => {
    const metrics = stackMetrics(stack({ web: { state: 'healthy', containerId: 'w' }, flaky: { state: 'backing-off', exitCode: 1, restarts: 4, nextRetryAt: T0 + 80_000 } }));
    const value = (name: string, labels: Record<string, string>) => metrics.find((m) => m.name === name && Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value;
    expect(value('memu_service_state', { service: 'web', state: 'healthy' })).toBe(1);
    expect(value('memu_service_state', { service: 'web', state: 'running' })).toBe(0);
    expect(value('memu_service_state', { service: 'flaky', state: 'backing-off' })).toBe(1);
    expect(value('memu_service_restarts', { service: 'flaky' })).toBe(4);
    expect(value('memu_service_restarts', { service: 'web' })).toBe(0);
  });
});
