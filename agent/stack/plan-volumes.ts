import type { DesiredStack } from '../../shared/compose/desired-stack.ts';
import { volumeBlueprint } from './container-spec.ts';
import type { CurrentState } from './current-state.ts';
import type { Step } from './steps.ts';

export interface VolumePlan {
  steps: Step[];
  /** Keys of the desired volumes that exist: containers may mount them. */
  ready: ReadonlySet<string>;
}

/** Volumes: create missing ones; remove one the stack no longer declares only when asked (it holds family data). */
export function planVolumes(desired: DesiredStack, current: CurrentState, removeVolumes: boolean): VolumePlan {
  const steps: Step[] = [];
  const ready = new Set<string>();
  for (const volume of Object.values(desired.volumes)) {
    if (volume.external || current.volumes.some((v) => v.name === volume.dockerName)) ready.add(volume.key);
    else steps.push({ kind: 'createVolume', volume: volumeBlueprint(desired.project, volume) });
  }
  if (removeVolumes) {
    const desiredNames = new Set(Object.values(desired.volumes).map((v) => v.dockerName));
    for (const v of current.volumes) {
      const inUse = current.containers.some((c) => c.volumes.includes(v.name));
      if (v.project === desired.project && !desiredNames.has(v.name) && !inUse) {
        steps.push({ kind: 'removeVolume', name: v.name, reason: 'no longer in the stack' });
      }
    }
  }
  return { steps, ready };
}
