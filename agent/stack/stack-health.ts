import type { HealthReason, Metric } from '../health/index.ts';
import type { ReportedStackStatus } from './reconciler.ts';
import { describeStatus, secondsUntil } from './service-status.ts';

/** Restarts after which a service waiting out its backoff is a reason: one or two crashes are routine, three in a row are not. */
export const RESTARTS_BEFORE_REPORTED = 3;

/**
 * Why the stack degrades the device: it cannot be loaded or reconciled, or a service is
 * crash-looping, keeps exiting, is unhealthy or in error. A crash-looping or failing
 * service is an app the family cannot use: unhealthy. Services still being created,
 * started, or waiting out their first backoffs are on their way and are not reasons.
 */
export function stackHealthReasons(status: ReportedStackStatus, now: number): HealthReason[] {
  const reasons: HealthReason[] = [];
  const reason = (code: string, message: string, unhealthy = false) => reasons.push({ source: 'stack', code, message, ...(unhealthy ? { status: 'unhealthy' as const } : {}) });
  if (status.error !== undefined) {
    if (status.errorStage === 'load-desired') reason('stack-unloadable', `the stack could not be loaded: ${status.error}`);
    else reason('stack-unreconciled', `the stack could not be reconciled: ${status.error}`);
  }
  for (const [name, service] of Object.entries(status.services)) {
    if (service.state === 'crash-looping') reason('service-crash-looping', `service ${describeStatus(name, service, now)}`, true);
    else if (service.state === 'backing-off' && service.restarts >= RESTARTS_BEFORE_REPORTED) {
      reason('service-restarting', `service ${name} keeps exiting (code ${service.exitCode}${service.outOfMemory ? ', out of memory' : ''}, restarted ${service.restarts} times); restarting in ${secondsUntil(service.nextRetryAt, now)} s`);
    } else if ((service.state === 'backing-off' || service.state === 'exited') && service.outOfMemory) {
      // Out of memory is never routine: a reason from the first time, while Docker still says which service it was.
      reason('service-out-of-memory', `service ${describeStatus(name, service, now)}`);
    } else if (service.state === 'unhealthy') reason('service-unhealthy', `service ${describeStatus(name, service, now)}`);
    else if (service.state === 'error') reason('service-error', `service ${describeStatus(name, service, now)}`, true);
  }
  return reasons;
}

const SERVICE_STATES = ['running', 'healthy', 'starting', 'unhealthy', 'waiting', 'backing-off', 'crash-looping', 'exited', 'pending', 'error'] as const;

/** Per service: its state (1 for the current one, as node-exporter's systemd unit states) and its restarts in the window. */
export function stackMetrics(status: ReportedStackStatus): Metric[] {
  const metrics: Metric[] = [];
  for (const [service, s] of Object.entries(status.services)) {
    for (const state of SERVICE_STATES) {
      metrics.push({ name: 'memu_service_state', help: 'Each stack service\'s state: 1 for the current one.', type: 'gauge', labels: { service, state }, value: s.state === state ? 1 : 0 });
    }
    const restarts = 'restarts' in s ? s.restarts : 0;
    metrics.push({ name: 'memu_service_restarts', help: 'Restarts after a failure inside the loop breaker\'s window.', type: 'gauge', labels: { service }, value: restarts });
  }
  return metrics;
}
