import type { HealthReason } from '../health/index.ts';
import type { ReportedStackStatus } from './reconciler.ts';
import { describeStatus } from './service-status.ts';

/**
 * Why the stack degrades the device: it cannot be loaded or reconciled, or a service is
 * crash-looping, unhealthy or in error. Services still being created, started or
 * waiting out a backoff are on their way and are not reasons.
 */
export function stackHealthReasons(status: ReportedStackStatus, now: number): HealthReason[] {
  const reasons: HealthReason[] = [];
  const reason = (code: string, message: string) => reasons.push({ source: 'stack', code, message });
  if (status.error !== undefined) {
    if (status.errorStage === 'load-desired') reason('stack-unloadable', `the stack could not be loaded: ${status.error}`);
    else reason('stack-unreconciled', `the stack could not be reconciled: ${status.error}`);
  }
  for (const [name, service] of Object.entries(status.services)) {
    if (service.state === 'crash-looping') reason('service-crash-looping', `service ${describeStatus(name, service, now)}`);
    else if (service.state === 'unhealthy') reason('service-unhealthy', `service ${describeStatus(name, service, now)}`);
    else if (service.state === 'error') reason('service-error', `service ${describeStatus(name, service, now)}`);
  }
  return reasons;
}
