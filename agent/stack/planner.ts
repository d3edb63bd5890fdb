import { dependencyOrder, type DesiredStack } from '../../shared/compose/desired-stack.ts';
import type { CurrentState } from './current-state.ts';
import { planRetiredContainers, planService, type ServicesSoFar } from './plan-containers.ts';
import type { PlanContext } from './plan-context.ts';
import { planNetworks } from './plan-networks.ts';
import { planVolumes } from './plan-volumes.ts';
import type { ServiceStatus } from './service-status.ts';
import type { Step } from './steps.ts';

export type { PlanContext } from './plan-context.ts';

export interface Plan {
  /** The next batch: independent steps, safe to run in parallel. Empty = converged. */
  steps: Step[];
  services: Record<string, ServiceStatus>;
}

/**
 * Compares the desired stack with Docker's current state and returns only the next
 * batch of steps (balena's model): after it runs, the caller reads Docker again and
 * asks for the next batch, so every decision is made on fresh state. Networks and
 * volumes are planned first because containers can only be created once theirs exist;
 * services in dependency order, so each one sees the status of what it depends on.
 */
export function planNextSteps(desired: DesiredStack, current: CurrentState, ctx: PlanContext): Plan {
  const networks = planNetworks(desired, current);
  const volumes = planVolumes(desired, current, ctx.removeVolumes);
  const soFar: ServicesSoFar = { statuses: {}, kept: new Map() };
  const serviceSteps: Step[] = [];
  const healthWaits = new Map<string, { containerId: string; neededBy: string[] }>();
  for (const name of dependencyOrder(desired)) {
    const plan = planService(desired.services[name]!, { desired, current, ctx, networks, volumes, soFar });
    soFar.statuses[name] = plan.status;
    if (plan.kept) soFar.kept.set(name, plan.kept);
    serviceSteps.push(...plan.steps);
    for (const wait of plan.healthWaits) {
      const entry = healthWaits.get(wait.service) ?? { containerId: wait.containerId, neededBy: [] };
      entry.neededBy.push(name);
      healthWaits.set(wait.service, entry);
    }
  }
  const waitSteps: Step[] = [...healthWaits].map(([service, { containerId, neededBy }]) => ({ kind: 'waitHealthy', service, containerId, neededBy }));
  return {
    steps: [...planRetiredContainers(desired, current), ...networks.steps, ...volumes.steps, ...serviceSteps, ...waitSteps],
    services: soFar.statuses,
  };
}
