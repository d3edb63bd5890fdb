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
}
