import type { ImageLock, Platform } from '../../shared/contracts/image-lock.ts';
import type { BackoffPolicy, RestartHistory } from './restart-backoff.ts';

/** Every volatile input of the planner, so it is a pure function. */
export interface PlanContext {
  /** Epoch ms. */
  now: number;
  lock: ImageLock;
  platform: Platform;
  restartHistory: RestartHistory;
  backoff: BackoffPolicy;
  /** Pull an image that is not on the device (otherwise: an error for that service). */
  allowPull: boolean;
  /** Remove volumes labelled for this stack that it no longer declares. */
  removeVolumes: boolean;
  /** Last failed action per service, shown until the service recovers. */
  lastErrors?: Readonly<Record<string, string>>;
  /** Services kept stopped (a whole-box restore replacing their data), and why; see StackHold. */
  hold?: StackHold;
}

/**
 * Services the reconciler keeps stopped, and does not create, until the hold is lifted:
 * those named, and those whose `org.memu.role` label is one of `roles`. Kept on the data
 * partition by the stack module, so a power cut does not start them half-way.
 */
export interface StackHold {
  reason: string;
  services: readonly string[];
  roles: readonly string[];
}

export function isHeld(hold: StackHold | undefined, service: { name: string; labels: Readonly<Record<string, string>> }): boolean {
  if (!hold) return false;
  const role = service.labels['org.memu.role'];
  return hold.services.includes(service.name) || (role !== undefined && hold.roles.includes(role));
}
