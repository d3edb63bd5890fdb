import type { DesiredService, DesiredStack, RestartPolicy } from '../../shared/compose/desired-stack.ts';
import { containerBlueprint, type ContainerBlueprint } from './container-spec.ts';
import { isAlive, type CurrentContainer, type CurrentState } from './current-state.ts';
import { isHeld, type PlanContext } from './plan-context.ts';
import { pinServiceImage, planImage } from './plan-images.ts';
import type { NetworkPlan } from './plan-networks.ts';
import type { VolumePlan } from './plan-volumes.ts';
import { nextRetry, type RetryDecision } from './restart-backoff.ts';
import { describeStatus, type ServiceStatus } from './service-status.ts';
import { backoffSteps, type Step } from './steps.ts';

/** Containers of services the stack no longer names. */
export function planRetiredContainers(desired: DesiredStack, current: CurrentState): Step[] {
  return current.containers
    .filter((c) => c.service === undefined || !desired.services[c.service])
    .map((c) => stopOrRemove(c, 'no longer in the stack', 10));
}

/** What the services planned so far tell a later one: dependencies are planned before their dependents. */
export interface ServicesSoFar {
  statuses: Record<string, ServiceStatus>;
  /** The container kept for each service. */
  kept: Map<string, CurrentContainer>;
}

export interface ServicePlanInput {
  desired: DesiredStack;
  current: CurrentState;
  ctx: PlanContext;
  networks: NetworkPlan;
  volumes: VolumePlan;
  soFar: ServicesSoFar;
}

/** A dependency whose healthcheck is still starting: the batch waits on it instead of ending. */
export interface HealthWait {
  service: string;
  containerId: string;
}

export interface ServicePlan {
  steps: Step[];
  status: ServiceStatus;
  kept?: CurrentContainer;
  healthWaits: HealthWait[];
}

type Decision = Omit<ServicePlan, 'kept' | 'healthWaits'> & { healthWaits?: HealthWait[] };

/**
 * One service's containers: keep the newest up-to-date one and retire the others, then
 * create, restart or start it as its state, restart policy, backoff and dependencies allow.
 */
export function planService(service: DesiredService, input: ServicePlanInput): ServicePlan {
  const image = pinServiceImage(service, input.ctx);
  if ('error' in image) return { steps: [], status: image.error, healthWaits: [] };
  const blueprint = containerBlueprint(input.desired, service, image.pinned);
  const mine = input.current.containers.filter((c) => c.service === service.name);
  const keep = chooseContainer(mine, blueprint, input.networks.outdated);
  const retired = mine
    .filter((c) => c !== keep)
    .map((c) => stopOrRemove(c, c.configHash === blueprint.configHash ? 'duplicate container' : 'configuration changed', blueprint.stopTimeoutS));
  const retry = nextRetry(input.ctx.restartHistory[service.name], input.ctx.backoff);
  const decision: Decision = isHeld(input.ctx.hold, service)
    ? planHeldService(keep, blueprint, input.ctx.hold!.reason)
    : !keep
    ? planMissingContainer(service, blueprint, image.pinned, mine.length > 0, retry, input)
    : isAlive(keep)
      ? planLiveContainer(service, keep, blueprint, retry, input.ctx)
      : keep.state === 'removing'
        ? { steps: [], status: { state: 'pending', reason: 'being removed by Docker' } }
        : planStoppedContainer(service, keep, retry, input);
  return { steps: [...retired, ...decision.steps], status: decision.status, healthWaits: decision.healthWaits ?? [], ...(keep && { kept: keep }) };
}

/** The newest up-to-date container, a live one before a stopped one; undefined when none is up to date. */
function chooseContainer(mine: CurrentContainer[], blueprint: ContainerBlueprint, outdatedNetworks: ReadonlySet<string>): CurrentContainer | undefined {
  return mine
    .filter((c) => c.configHash === blueprint.configHash && !c.networks.some((n) => outdatedNetworks.has(n)))
    .sort((a, b) => Number(isAlive(b)) - Number(isAlive(a)) || (b.startedAt ?? 0) - (a.startedAt ?? 0))[0];
}

function planMissingContainer(
  service: DesiredService,
  blueprint: ContainerBlueprint,
  pinned: string,
  beingReplaced: boolean,
  retry: RetryDecision,
  input: ServicePlanInput,
): Decision {
  const missingNetworks = Object.keys(service.networks).filter((k) => !input.networks.ready.has(k));
  const missingVolumes = service.mounts.filter((m) => m.type === 'volume' && !input.volumes.ready.has(m.source)).map((m) => m.source);
  if (missingNetworks.length > 0 || missingVolumes.length > 0) {
    const preparing = [...missingNetworks.map((n) => `network ${n}`), ...missingVolumes.map((v) => `volume ${v}`)].join(', ');
    return { steps: [], status: { state: 'pending', reason: `preparing ${preparing}` } };
  }
  if (beingReplaced) return { steps: [], status: { state: 'pending', reason: 'being recreated (configuration changed)' } };
  const image = planImage(service, pinned, input.current, input.ctx, retry);
  if (!image.present) return image;
  const lastError = input.ctx.lastErrors?.[service.name];
  if (retry.retryAt > input.ctx.now) {
    return {
      steps: backoffSteps(service.name, retry, lastError ? `create failed: ${lastError}` : 'restart backoff'),
      status: lastError
        ? { state: 'error', reason: lastError }
        : { state: 'pending', reason: `waiting to create (backoff until ${new Date(retry.retryAt).toISOString()})` },
    };
  }
  return { steps: [{ kind: 'createContainer', service: service.name, blueprint }], status: { state: 'pending', reason: 'being created' } };
}

function planLiveContainer(service: DesiredService, keep: CurrentContainer, blueprint: ContainerBlueprint, retry: RetryDecision, ctx: PlanContext): Decision {
  if (keep.health !== 'unhealthy') {
    const state = keep.health === 'healthy' ? 'healthy' : keep.health === 'starting' ? 'starting' : 'running';
    return { steps: [], status: { state, containerId: keep.id } };
  }
  const gated = retry.retryAt > ctx.now;
  return {
    steps: gated
      ? backoffSteps(service.name, retry, 'unhealthy')
      : [{ kind: 'restartContainer', service: service.name, containerId: keep.id, timeoutS: blueprint.stopTimeoutS, reason: 'unhealthy' }],
    status: {
      state: 'unhealthy',
      containerId: keep.id,
      restarts: retry.restartsInWindow,
      loopBreaker: retry.loopBreaker,
      ...(gated && { nextRetryAt: retry.retryAt }),
    },
  };
}

/** Created (never started), exited or dead. */
function planStoppedContainer(service: DesiredService, keep: CurrentContainer, retry: RetryDecision, input: ServicePlanInput): Decision {
  const name = service.name;
  const neverStarted = keep.state === 'created' && keep.startedAt === undefined;
  // Which service the kernel killed for memory, while Docker still says so (until it starts again).
  const oom = keep.oomKilled ? { outOfMemory: true as const } : {};
  if (!neverStarted && !shouldRestart(service.restart, keep.exitCode, retry.streak)) {
    return { steps: [], status: { state: 'exited', exitCode: keep.exitCode, ...oom } };
  }
  const blocked = blockingDependencies(service, input.soFar, input.desired, input.ctx.now);
  if (blocked.length > 0) {
    return {
      steps: [],
      status: { state: 'waiting', for: blocked.map((b) => b.name), reason: blocked.map((b) => b.reason).join('; ') },
      healthWaits: blocked.flatMap((b) => (b.waitHealthy ? [{ service: b.name, containerId: b.waitHealthy }] : [])),
    };
  }
  const lastError = input.ctx.lastErrors?.[name];
  if (retry.retryAt > input.ctx.now) {
    const held = { exitCode: keep.exitCode, ...oom, restarts: retry.restartsInWindow, nextRetryAt: retry.retryAt };
    return {
      steps: backoffSteps(name, retry, neverStarted ? `start failed: ${lastError ?? 'unknown error'}` : keep.oomKilled ? `ran out of memory (exit code ${keep.exitCode})` : `exited with code ${keep.exitCode}`),
      // Crash-looping only once the loop breaker has tripped; until then the service is just waiting out its backoff.
      status:
        neverStarted && lastError
          ? { state: 'error', reason: lastError }
          : retry.loopBreaker
            ? { state: 'crash-looping', ...held }
            : { state: 'backing-off', ...held },
    };
  }
  return {
    steps: [{ kind: 'startContainer', service: name, containerId: keep.id, reason: neverStarted ? 'new' : keep.oomKilled ? 'out of memory' : 'crashed' }],
    status: { state: 'pending', reason: neverStarted ? 'being started' : keep.oomKilled ? `being restarted after running out of memory (exit code ${keep.exitCode})` : `being restarted after exit code ${keep.exitCode}` },
  };
}

/** Held: a running container is stopped (not removed: its logs stay), none is created or started. */
function planHeldService(keep: CurrentContainer | undefined, blueprint: ContainerBlueprint, reason: string): Decision {
  const status: ServiceStatus = { state: 'pending', reason: `held stopped: ${reason}` };
  if (keep && isAlive(keep)) return { steps: [{ kind: 'stopContainer', service: blueprint.service, containerId: keep.id, timeoutS: blueprint.stopTimeoutS, reason: `held: ${reason}` }], status };
  return { steps: [], status };
}

function stopOrRemove(c: CurrentContainer, reason: string, timeoutS: number): Step {
  return isAlive(c)
    ? { kind: 'stopContainer', service: c.service, containerId: c.id, timeoutS, reason }
    : { kind: 'removeContainer', service: c.service, containerId: c.id, reason };
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

function blockingDependencies(service: DesiredService, soFar: ServicesSoFar, desired: DesiredStack, now: number): BlockingDependency[] {
  const blocked: BlockingDependency[] = [];
  for (const [dep, { condition }] of Object.entries(service.dependsOn)) {
    const c = soFar.kept.get(dep);
    const status = soFar.statuses[dep];
    const running = c !== undefined && isAlive(c);
    // A dependency restarted or recreated right now is "pending"; its old container does not count.
    const settled = status !== undefined && status.state !== 'pending' && status.state !== 'error';
    const described = describeStatus(dep, status, now);
    switch (condition) {
      case 'service_started': {
        const leftAlone = status?.state === 'exited' && desired.services[dep]?.restart.mode === 'no';
        if (!(settled && (running || leftAlone))) blocked.push({ name: dep, reason: described });
        break;
      }
      case 'service_healthy':
        if (!(settled && running && c.health === 'healthy')) {
          blocked.push({ name: dep, reason: described, ...(c?.state === 'running' && c.health === 'starting' && { waitHealthy: c.id }) });
        }
        break;
      case 'service_completed_successfully':
        if (!(settled && c !== undefined && c.state === 'exited' && c.startedAt !== undefined && c.exitCode === 0)) {
          blocked.push({ name: dep, reason: status?.state === 'exited' ? described : `${described}; it has not completed yet` });
        }
        break;
    }
  }
  return blocked;
}
