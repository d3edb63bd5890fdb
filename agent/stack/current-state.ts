import type Dockerode from 'dockerode';
import { familiarReference } from './container-spec.ts';
import { CONFIG_HASH_LABEL, NETWORK_LABEL, SERVICE_LABEL, STACK_LABEL, stackFilter, VOLUME_LABEL } from './labels.ts';

/** What Docker says right now about one stack. Rebuilt on every loop, never stored. */
export interface CurrentState {
  containers: CurrentContainer[];
  networks: CurrentNetwork[];
  volumes: CurrentVolume[];
  /** Locally present images by every name Docker knows them by (`repo@sha256:…`, `repo:tag`, image id), short form. */
  images: ReadonlySet<string>;
}

export type ContainerRunState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
export type HealthState = 'none' | 'starting' | 'healthy' | 'unhealthy';

const ALIVE_STATES: ReadonlySet<ContainerRunState> = new Set(['running', 'paused', 'restarting']);

/** A container with a live process: it has to be stopped before it can be removed. */
export function isAlive(container: Pick<CurrentContainer, 'state'>): boolean {
  return ALIVE_STATES.has(container.state);
}

export interface CurrentContainer {
  id: string;
  name: string;
  /** `org.memu.service`; undefined on a container that carries the stack label only. */
  service?: string;
  configHash?: string;
  state: ContainerRunState;
  health: HealthState;
  exitCode: number;
  /** The kernel killed it for using more memory than it may (Docker's State.OOMKilled; cleared when it starts again). */
  oomKilled: boolean;
  /** Epoch ms; undefined when never started. */
  startedAt?: number;
  finishedAt?: number;
  /** Docker names of the networks it is attached to. */
  networks: string[];
  /** Names of the named volumes it mounts. */
  volumes: string[];
}

export interface CurrentNetwork {
  id: string;
  name: string;
  /** `org.memu.stack`: set when this stack created it; undefined for a network adopted by name. */
  project?: string;
  key?: string;
  configHash?: string;
  /** Every container attached, the stack's or not. */
  containerIds: string[];
}

export interface CurrentVolume {
  name: string;
  project?: string;
  key?: string;
}

/**
 * Containers are read by the stack label. Networks and volumes are listed in full (a
 * device has a handful) so one that exists under the stack's name without our labels
 * (e.g. made by `docker compose up`) is adopted instead of re-created forever.
 */
export async function readCurrentState(docker: Dockerode, project: string): Promise<CurrentState> {
  const [containers, allNetworks, volumes, images] = await Promise.all([
    docker.listContainers({ all: true, filters: stackFilter(project) }),
    docker.listNetworks(),
    docker.listVolumes(),
    docker.listImages(),
  ]);
  const networks = allNetworks.filter((n) => !['bridge', 'host', 'none'].includes(n.Name));
  const [inspected, networkDetails] = await Promise.all([
    Promise.all(containers.map((c) => inspectOrNull(docker.getContainer(c.Id)))),
    // Attached containers matter only for networks this stack may remove.
    Promise.all(
      networks.map((n) =>
        n.Labels?.[STACK_LABEL] === project ? docker.getNetwork(n.Id).inspect().catch(() => null) : null,
      ),
    ),
  ]);

  const currentContainers: CurrentContainer[] = [];
  containers.forEach((summary, i) => {
    const detail = inspected[i];
    if (!detail) return; // removed between list and inspect
    const labels = detail.Config.Labels ?? {};
    const container: CurrentContainer = {
      id: detail.Id,
      name: detail.Name.replace(/^\//, ''),
      state: detail.State.Status as ContainerRunState,
      health: (detail.State.Health?.Status as HealthState | undefined) ?? 'none',
      exitCode: detail.State.ExitCode,
      oomKilled: detail.State.OOMKilled === true,
      networks: Object.keys(detail.NetworkSettings.Networks ?? {}),
      volumes: (summary.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
    };
    if (labels[SERVICE_LABEL] !== undefined) container.service = labels[SERVICE_LABEL];
    if (labels[CONFIG_HASH_LABEL] !== undefined) container.configHash = labels[CONFIG_HASH_LABEL];
    const startedAt = dockerTime(detail.State.StartedAt);
    const finishedAt = dockerTime(detail.State.FinishedAt);
    if (startedAt !== undefined) container.startedAt = startedAt;
    if (finishedAt !== undefined) container.finishedAt = finishedAt;
    currentContainers.push(container);
  });

  const currentNetworks: CurrentNetwork[] = networks.map((n, i) => {
    const network: CurrentNetwork = {
      id: n.Id,
      name: n.Name,
      containerIds: Object.keys(networkDetails[i]?.Containers ?? {}),
    };
    if (n.Labels?.[STACK_LABEL] !== undefined) network.project = n.Labels[STACK_LABEL];
    if (n.Labels?.[NETWORK_LABEL] !== undefined) network.key = n.Labels[NETWORK_LABEL];
    if (n.Labels?.[CONFIG_HASH_LABEL] !== undefined) network.configHash = n.Labels[CONFIG_HASH_LABEL];
    return network;
  });

  const currentVolumes: CurrentVolume[] = (volumes.Volumes ?? []).map((v) => {
    const volume: CurrentVolume = { name: v.Name };
    const labels = (v.Labels as Record<string, string> | null) ?? {};
    if (labels[STACK_LABEL] !== undefined) volume.project = labels[STACK_LABEL];
    if (labels[VOLUME_LABEL] !== undefined) volume.key = labels[VOLUME_LABEL];
    return volume;
  });

  const imageNames = new Set<string>();
  for (const image of images) {
    imageNames.add(image.Id);
    for (const name of [...(image.RepoDigests ?? []), ...(image.RepoTags ?? [])]) imageNames.add(familiarReference(name));
  }
  return { containers: currentContainers, networks: currentNetworks, volumes: currentVolumes, images: imageNames };
}

async function inspectOrNull(container: Dockerode.Container): Promise<Dockerode.ContainerInspectInfo | null> {
  try {
    return await container.inspect();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return null;
    throw error;
  }
}

/** Docker writes 0001-01-01T00:00:00Z for "never". */
function dockerTime(value: string | undefined): number | undefined {
  if (!value || value.startsWith('0001-')) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
