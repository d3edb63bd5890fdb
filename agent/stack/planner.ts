import { pinnedReference, type ImageLock, type Platform } from '../../shared/contracts/image-lock.ts';
import { containerBlueprint, familiarReference, networkBlueprint, volumeBlueprint } from './container-spec.ts';
import type { CurrentContainer, CurrentState } from './current-state.ts';
import { dependencyOrder, type DesiredService, type DesiredStack, type RestartPolicy } from '../../shared/compose/desired-stack.ts';
import { nextRetry, type BackoffPolicy, type RestartHistory } from './restart-backoff.ts';
import { describeStatus, type ServiceStatus } from './service-status.ts';
import type { Step } from './steps.ts';

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

export interface Plan {
  /** The next batch: independent steps, safe to run in parallel. Empty = converged. */
  steps: Step[];
  services: Record<string, ServiceStatus>;
}

const ALIVE = new Set(['running', 'paused', 'restarting']);

/**
 * Compares the desired stack with Docker's current state and returns only the next
 * batch of steps (balena's model): after it runs, the caller reads Docker again and
 * asks for the next batch, so every decision is made on fresh state.
 */
export function planNextSteps(desired: DesiredStack, current: CurrentState, ctx: PlanContext): Plan {
  const steps: Step[] = [];
  const services: Record<string, ServiceStatus> = {};
  const stopOrRemove = (c: CurrentContainer, reason: string, timeoutS: number): Step =>
    ALIVE.has(c.state)
      ? { kind: 'stopContainer', service: c.service, containerId: c.id, timeoutS, reason }
      : { kind: 'removeContainer', service: c.service, containerId: c.id, reason };

  // Containers of services the stack no longer names.
  for (const c of current.containers) {
    if (c.service === undefined || !desired.services[c.service]) {
      steps.push(stopOrRemove(c, 'no longer in the stack', 10));
    }
  }

  // Networks: create missing, replace changed (once no container uses them), drop orphans.
  const readyNetworks = new Set<string>();
  const outdatedNetworks = new Set<string>();
  for (const network of Object.values(desired.networks)) {
    if (network.external) {
      readyNetworks.add(network.key);
      continue;
    }
    const blueprint = networkBlueprint(desired.project, network);
    const existing = current.networks.find((n) => n.name === network.dockerName);
    if (!existing) {
      steps.push({ kind: 'createNetwork', network: blueprint });
    } else if (existing.configHash !== undefined && existing.configHash !== blueprint.configHash) {
      outdatedNetworks.add(existing.name);
      if (existing.containerIds.length === 0) {
        steps.push({ kind: 'removeNetwork', networkId: existing.id, name: existing.name, reason: 'configuration changed' });
      }
    } else {
      readyNetworks.add(network.key);
    }
  }
  const desiredNetworkNames = new Set(Object.values(desired.networks).map((n) => n.dockerName));
  for (const n of current.networks) {
    if (n.project === desired.project && !desiredNetworkNames.has(n.name) && n.containerIds.length === 0) {
      steps.push({ kind: 'removeNetwork', networkId: n.id, name: n.name, reason: 'no longer in the stack' });
    }
  }

  // Volumes: create missing; never remove one unless asked.
  const readyVolumes = new Set<string>();
  for (const volume of Object.values(desired.volumes)) {
    if (volume.external || current.volumes.some((v) => v.name === volume.dockerName)) readyVolumes.add(volume.key);
    else steps.push({ kind: 'createVolume', volume: volumeBlueprint(desired.project, volume) });
  }
  if (ctx.removeVolumes) {
    const desiredVolumeNames = new Set(Object.values(desired.volumes).map((v) => v.dockerName));
    for (const v of current.volumes) {
      const inUse = current.containers.some((c) => c.volumes.includes(v.name));
      if (v.project === desired.project && !desiredVolumeNames.has(v.name) && !inUse) {
        steps.push({ kind: 'removeVolume', name: v.name, reason: 'no longer in the stack' });
      }
    }
  }

  // Services, dependencies first, so each one can see the status of what it depends on.
  const chosen = new Map<string, CurrentContainer>();
  const waitFor = new Map<string, { containerId: string; neededBy: string[] }>();
  for (const name of dependencyOrder(desired)) {
    const service = desired.services[name]!;
    const lastError = ctx.lastErrors?.[name];
    let pinned: string;
    try {
      pinned = pinnedReference(ctx.lock, service.image, ctx.platform);
    } catch (error) {
      services[name] = { state: 'error', reason: `service ${name}: ${(error as Error).message}` };
      continue;
    }
    const blueprint = containerBlueprint(desired, service, pinned);
    const mine = current.containers.filter((c) => c.service === name);
    const upToDate = mine
      .filter((c) => c.configHash === blueprint.configHash && !c.networks.some((n) => outdatedNetworks.has(n)))
      .sort((a, b) => Number(ALIVE.has(b.state)) - Number(ALIVE.has(a.state)) || (b.startedAt ?? 0) - (a.startedAt ?? 0));
    const keep = upToDate[0];
    for (const c of mine) {
      if (c === keep) continue;
      const reason = c.configHash === blueprint.configHash ? 'duplicate container' : 'configuration changed';
      steps.push(stopOrRemove(c, reason, blueprint.stopTimeoutS));
    }
    if (keep) chosen.set(name, keep);

    const missingNetworks = Object.keys(service.networks).filter((k) => !readyNetworks.has(k));
    const missingVolumes = service.mounts.filter((m) => m.type === 'volume' && !readyVolumes.has(m.source)).map((m) => m.source);
    if (!keep && (missingNetworks.length > 0 || missingVolumes.length > 0)) {
      services[name] = {
        state: 'pending',
        reason: `preparing ${[...missingNetworks.map((n) => `network ${n}`), ...missingVolumes.map((v) => `volume ${v}`)].join(', ')}`,
      };
      continue;
    }
    const retry = nextRetry(ctx.restartHistory[name], ctx.backoff);
    const gated = retry.retryAt > ctx.now;
    const pushBackoff = (reason: string) => {
      steps.push({ kind: 'backoff', service: name, retryAt: retry.retryAt, reason });
      if (retry.loopBreaker) {
        steps.push({ kind: 'reportCrashLoop', service: name, restartsInWindow: retry.restartsInWindow, retryAt: retry.retryAt });
      }
    };

    if (!keep) {
      if (mine.length > 0) {
        services[name] = { state: 'pending', reason: 'being recreated (configuration changed)' };
        continue;
      }
      if (!imagePresent(current, pinned)) {
        if (ctx.allowPull && !gated) {
          steps.push({ kind: 'pullImage', service: name, reference: pinned });
          services[name] = { state: 'pending', reason: `pulling ${pinned}` };
        } else {
          services[name] = {
            state: 'error',
            reason:
              `service ${name}: image ${service.image} (${pinned}) is not on this device` +
              (lastError ? `; ${lastError}` : '; load it (the image preload) or allow pulling'),
          };
          if (gated) pushBackoff(`pull failed: ${lastError ?? 'unknown error'}`);
        }
        continue;
      }
      if (gated) {
        pushBackoff(lastError ? `create failed: ${lastError}` : 'restart backoff');
        services[name] = lastError
          ? { state: 'error', reason: lastError }
          : { state: 'pending', reason: `waiting to create (backoff until ${new Date(retry.retryAt).toISOString()})` };
        continue;
      }
      steps.push({ kind: 'createContainer', service: name, blueprint });
      services[name] = { state: 'pending', reason: 'being created' };
      continue;
    }

    if (ALIVE.has(keep.state)) {
      if (keep.health === 'unhealthy') {
        if (gated) pushBackoff('unhealthy');
        else steps.push({ kind: 'restartContainer', service: name, containerId: keep.id, timeoutS: blueprint.stopTimeoutS, reason: 'unhealthy' });
        services[name] = {
          state: 'unhealthy',
          containerId: keep.id,
          restarts: retry.restartsInWindow,
          loopBreaker: retry.loopBreaker,
          ...(gated && { nextRetryAt: retry.retryAt }),
        };
      } else {
        services[name] = {
          state: keep.health === 'healthy' ? 'healthy' : keep.health === 'starting' ? 'starting' : 'running',
          containerId: keep.id,
        };
      }
      continue;
    }
    if (keep.state === 'removing') {
      services[name] = { state: 'pending', reason: 'being removed by Docker' };
      continue;
    }

    // created (never started), exited or dead.
    const neverStarted = keep.state === 'created' && keep.startedAt === undefined;
    if (!neverStarted && !shouldRestart(service.restart, keep.exitCode, retry.streak)) {
      services[name] = { state: 'exited', exitCode: keep.exitCode };
      continue;
    }
    const blocked = blockingDependencies(service, chosen, services, desired);
    if (blocked.length > 0) {
      for (const b of blocked) {
        if (b.waitHealthy) {
          const entry = waitFor.get(b.name) ?? { containerId: b.waitHealthy, neededBy: [] };
          entry.neededBy.push(name);
          waitFor.set(b.name, entry);
        }
      }
      services[name] = { state: 'waiting', for: blocked.map((b) => b.name), reason: blocked.map((b) => b.reason).join('; ') };
      continue;
    }
    if (gated) {
      pushBackoff(neverStarted ? `start failed: ${lastError ?? 'unknown error'}` : `exited with code ${keep.exitCode}`);
      services[name] =
        neverStarted && lastError
          ? { state: 'error', reason: lastError }
          : {
              state: 'crash-looping',
              exitCode: keep.exitCode,
              restarts: retry.restartsInWindow,
              nextRetryAt: retry.retryAt,
              loopBreaker: retry.loopBreaker,
            };
      continue;
    }
    steps.push({ kind: 'startContainer', service: name, containerId: keep.id, reason: neverStarted ? 'new' : 'crashed' });
    services[name] = { state: 'pending', reason: neverStarted ? 'being started' : `being restarted after exit code ${keep.exitCode}` };
  }

  for (const [service, { containerId, neededBy }] of waitFor) {
    steps.push({ kind: 'waitHealthy', service, containerId, neededBy });
  }
  return { steps, services };
}

function shouldRestart(policy: RestartPolicy, exitCode: number, streak: number): boolean {
  switch (policy.mode) {
    case 'no':
      return false;
    case 'always':
    case 'unless-stopped':
      return true;
    case 'on-failure':
      return exitCode !== 0 && (policy.maxRetries === undefined || streak < policy.maxRetries);
  }
}

interface BlockingDependency {
  name: string;
  reason: string;
  /** Container id to wait on when the dependency's healthcheck is still starting. */
  waitHealthy?: string;
}

function blockingDependencies(
  service: DesiredService,
  chosen: ReadonlyMap<string, CurrentContainer>,
  statuses: Readonly<Record<string, ServiceStatus>>,
  desired: DesiredStack,
): BlockingDependency[] {
  const blocked: BlockingDependency[] = [];
  for (const [dep, { condition }] of Object.entries(service.dependsOn)) {
    const c = chosen.get(dep);
    const status = statuses[dep];
    const running = c !== undefined && ALIVE.has(c.state);
    // A dependency restarted or recreated right now is "pending"; its old container does not count.
    const settled = status !== undefined && status.state !== 'pending' && status.state !== 'error';
    switch (condition) {
      case 'service_started': {
        const leftAlone = status?.state === 'exited' && desired.services[dep]?.restart.mode === 'no';
        if (!(settled && (running || leftAlone))) blocked.push({ name: dep, reason: describeStatus(dep, status) });
        break;
      }
      case 'service_healthy':
        if (!(settled && running && c.health === 'healthy')) {
          blocked.push({
            name: dep,
            reason: describeStatus(dep, status),
            ...(c?.state === 'running' && c.health === 'starting' && { waitHealthy: c.id }),
          });
        }
        break;
      case 'service_completed_successfully':
        if (!(settled && c !== undefined && c.state === 'exited' && c.startedAt !== undefined && c.exitCode === 0)) {
          const why = status?.state === 'exited' ? describeStatus(dep, status) : `${describeStatus(dep, status)}; it has not completed yet`;
          blocked.push({ name: dep, reason: why });
        }
        break;
    }
  }
  return blocked;
}

function imagePresent(current: CurrentState, pinned: string): boolean {
  return current.images.has(familiarReference(pinned));
}
