import type { DesiredService } from '../../shared/compose/desired-stack.ts';
import { pinnedReference } from '../../shared/contracts/image-lock.ts';
import { familiarReference } from './container-spec.ts';
import type { CurrentState } from './current-state.ts';
import type { PlanContext } from './plan-context.ts';
import type { RetryDecision } from './restart-backoff.ts';
import type { ServiceStatus } from './service-status.ts';
import { backoffSteps, type Step } from './steps.ts';

/** The lock's `repo@digest` of the service's image for this platform, or why there is none. */
export function pinServiceImage(service: DesiredService, ctx: Pick<PlanContext, 'lock' | 'platform'>): { pinned: string } | { error: ServiceStatus } {
  try {
    return { pinned: pinnedReference(ctx.lock, service.image, ctx.platform) };
  } catch (error) {
    return { error: { state: 'error', reason: `service ${service.name}: ${(error as Error).message}` } };
  }
}

export type ImagePlan = { present: true } | { present: false; steps: Step[]; status: ServiceStatus };

/**
 * Before a service's container can be created its pinned image must be on the device:
 * present, pulled (only when pulling is allowed and no backoff holds it), or an error
 * naming service and image.
 */
export function planImage(service: DesiredService, pinned: string, current: CurrentState, ctx: PlanContext, retry: RetryDecision): ImagePlan {
  if (current.images.has(familiarReference(pinned))) return { present: true };
  const gated = retry.retryAt > ctx.now;
  if (ctx.allowPull && !gated) {
    return { present: false, steps: [{ kind: 'pullImage', service: service.name, reference: pinned }], status: { state: 'pending', reason: `pulling ${pinned}` } };
  }
  const lastError = ctx.lastErrors?.[service.name];
  return {
    present: false,
    steps: gated ? backoffSteps(service.name, retry, `pull failed: ${lastError ?? 'unknown error'}`) : [],
    status: {
      state: 'error',
      reason:
        `service ${service.name}: image ${service.image} (${pinned}) is not on this device` +
        (lastError ? `; ${lastError}` : '; load it (the image preload) or allow pulling'),
    },
  };
}
