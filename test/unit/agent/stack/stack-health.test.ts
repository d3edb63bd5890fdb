import { describe, expect, it } from 'vitest';
import type { ReportedStackStatus } from '../../../../agent/stack/reconciler.ts';
import { reportServices, type ServiceStatus } from '../../../../agent/stack/service-status.ts';
import { stackHealthReasons } from '../../../../agent/stack/stack-health.ts';

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
      },
      { source: 'stack', code: 'service-unhealthy', message: 'service db is unhealthy; restarting in 10 s' },
      { source: 'stack', code: 'service-error', message: 'service photos has an error: service photos: image x (y) is not on this device' },
    ]);
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
