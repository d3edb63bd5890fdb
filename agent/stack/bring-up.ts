import Docker from 'dockerode';
import type { Logger } from 'pino';
import { pinnedReference, type ImageLock, type Platform } from '../../shared/contracts/image-lock.ts';
import type { StackReconciler } from './reconciler.ts';
import type { ServiceStatus } from './service-status.ts';

/** Seconds from the start of the bring-up step: what first boot spends where. */
export interface BringUpTimings {
  dockerReadySeconds: number;
  imagesAvailableSeconds: number;
  stackUpSeconds: number;
}

export interface BringUpInput {
  reconciler: StackReconciler;
  dockerSocket: string;
  lock: () => Promise<ImageLock>;
  platform: Platform;
  log: Logger;
  timeoutMs: number;
}

/**
 * First boot's bring-stack-up: waits for Docker, checks the preloaded images, then
 * reconciles until every service is up (healthy where it has a check) or time runs out.
 */
export async function bringStackUp(input: BringUpInput): Promise<BringUpTimings> {
  const { reconciler, log, timeoutMs } = input;
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  const deadline = started + timeoutMs;
  await waitForDocker(input.dockerSocket, deadline);
  const dockerReadySeconds = seconds();
  await requirePreloadedImages(input.dockerSocket, await input.lock(), input.platform, log);
  const imagesAvailableSeconds = seconds();
  for (;;) {
    const result = await reconciler.reconcileOnce({ timeLimitMs: Math.max(10_000, Math.min(120_000, deadline - Date.now())) });
    // Converged means no steps are left; up also means every healthcheck has passed.
    if (result.converged && Object.values(result.services).every(isServiceUp)) {
      const timings = { dockerReadySeconds, imagesAvailableSeconds, stackUpSeconds: seconds() };
      log.info({ services: Object.keys(result.services).length, ...timings }, 'stack is up');
      return timings;
    }
    if (Date.now() >= deadline) {
      const notUp = Object.entries(result.services)
        .filter(([, s]) => !isServiceUp(s))
        .map(([name, s]) => `${name}: ${s.state}`);
      throw new Error(`the stack did not come up within ${Math.round(timeoutMs / 1000)} s (${result.error ?? notUp.join(', ')})`);
    }
    if (result.error) log.warn({ error: result.error }, 'stack not up yet');
    await new Promise((res) => setTimeout(res, 2000));
  }
}

/** Up: healthy, or running without a healthcheck, or a one-shot job that finished well. */
export function isServiceUp(s: ServiceStatus): boolean {
  return s.state === 'healthy' || s.state === 'running' || (s.state === 'exited' && s.exitCode === 0);
}

/** Docker starts after the data partition is mounted; wait for its API (until `deadline`, or `signal` aborts). */
export async function waitForDocker(socketPath: string, deadline: number, signal?: AbortSignal): Promise<void> {
  const docker = new Docker({ socketPath });
  let last = '';
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    try {
      await docker.ping();
      return;
    } catch (err) {
      last = (err as Error).message;
      await new Promise((res) => setTimeout(res, 1000));
    }
  }
  throw new Error(`Docker did not answer on ${socketPath}: ${last}`);
}

/**
 * Checks every locked image for this platform is in Docker (preloaded at build time).
 * Missing ones are only logged: the reconciler reports them per service with the reason.
 */
async function requirePreloadedImages(socketPath: string, lock: ImageLock, platform: Platform, log: Logger): Promise<void> {
  const docker = new Docker({ socketPath });
  const missing: string[] = [];
  for (const reference of Object.keys(lock.images)) {
    const pinned = pinnedReference(lock, reference, platform);
    await docker.getImage(pinned).inspect().catch(() => missing.push(pinned));
  }
  if (missing.length) log.warn({ missing }, 'locked images missing from Docker; the stack cannot start them without a registry');
}
