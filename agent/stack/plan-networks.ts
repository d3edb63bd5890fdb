import type { DesiredStack } from '../../shared/compose/desired-stack.ts';
import { networkBlueprint } from './container-spec.ts';
import type { CurrentState } from './current-state.ts';
import type { Step } from './steps.ts';

export interface NetworkPlan {
  steps: Step[];
  /** Keys of the desired networks that exist as declared: containers may join them. */
  ready: ReadonlySet<string>;
  /** Docker names of networks whose declaration changed: their containers are recreated first. */
  outdated: ReadonlySet<string>;
}

/** Networks: create missing ones, replace changed ones (once no container uses them), drop orphans. */
export function planNetworks(desired: DesiredStack, current: CurrentState): NetworkPlan {
  const steps: Step[] = [];
  const ready = new Set<string>();
  const outdated = new Set<string>();
  for (const network of Object.values(desired.networks)) {
    if (network.external) {
      ready.add(network.key);
      continue;
    }
    const blueprint = networkBlueprint(desired.project, network);
    const existing = current.networks.find((n) => n.name === network.dockerName);
    if (!existing) {
      steps.push({ kind: 'createNetwork', network: blueprint });
    } else if (existing.configHash !== undefined && existing.configHash !== blueprint.configHash) {
      outdated.add(existing.name);
      if (existing.containerIds.length === 0) {
        steps.push({ kind: 'removeNetwork', networkId: existing.id, name: existing.name, reason: 'configuration changed' });
      }
    } else {
      ready.add(network.key);
    }
  }
  const desiredNames = new Set(Object.values(desired.networks).map((n) => n.dockerName));
  for (const n of current.networks) {
    if (n.project === desired.project && !desiredNames.has(n.name) && n.containerIds.length === 0) {
      steps.push({ kind: 'removeNetwork', networkId: n.id, name: n.name, reason: 'no longer in the stack' });
    }
  }
  return { steps, ready, outdated };
}
