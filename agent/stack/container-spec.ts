import { createHash } from 'node:crypto';
import type Dockerode from 'dockerode';
import type { DesiredNetwork, DesiredService, DesiredStack, DesiredVolume } from '../../shared/compose/desired-stack.ts';
import { CONFIG_HASH_LABEL, NETWORK_LABEL, SERVICE_LABEL, STACK_LABEL, VOLUME_LABEL } from './labels.ts';

/** Everything needed to create one service's container, and the hash that identifies it. */
export interface ContainerBlueprint {
  service: string;
  name: string;
  configHash: string;
  create: Dockerode.ContainerCreateOptions;
  /** Networks joined after creation (the Docker API attaches only one at create time). */
  connect: { network: string; aliases: string[] }[];
  stopTimeoutS: number;
}

export const DEFAULT_STOP_TIMEOUT_S = 10;

/** Compose v2's naming, so operators find containers where they expect them. */
export function containerName(project: string, service: string): string {
  return `${project}-${service}-1`;
}

/**
 * Maps a desired service to Docker create options. `pinnedImage` is the lock's
 * `repo@sha256:…` for this platform. The config hash covers the whole create request,
 * so any effective change (image digest, env_file contents, a mapping change in a new
 * agent) recreates exactly that service.
 */
export function containerBlueprint(stack: DesiredStack, service: DesiredService, pinnedImage: string): ContainerBlueprint {
  const exposedPorts: Record<string, object> = {};
  const portBindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of service.ports) {
    const key = `${port.containerPort}/${port.protocol}`;
    exposedPorts[key] = {};
    (portBindings[key] ??= []).push({ HostIp: port.hostIp ?? '', HostPort: port.hostPort ?? '' });
  }
  const binds = service.mounts.map((mount) => {
    const source = mount.type === 'volume' ? stack.volumes[mount.source]!.dockerName : mount.source;
    return `${source}:${mount.target}${mount.readOnly ? ':ro' : ''}`;
  });
  const networkKeys = Object.keys(service.networks).sort();
  const endpoint = (key: string) => ({
    network: stack.networks[key]!.dockerName,
    aliases: [...new Set([service.name, ...service.networks[key]!.aliases])],
  });
  const [firstNetwork, ...otherNetworks] = networkKeys.map(endpoint);

  const hostConfig: Dockerode.HostConfig = {
    Binds: binds,
    PortBindings: portBindings,
    // The agent owns restarts (backoff, loop breaker, health); Docker's own policy would race it.
    RestartPolicy: { Name: 'no' },
    NetworkMode: service.networkMode ?? firstNetwork?.network ?? 'none',
    Devices: service.devices.map((d) => ({
      PathOnHost: d.pathOnHost,
      PathInContainer: d.pathInContainer,
      CgroupPermissions: d.permissions,
    })),
    CapAdd: service.capAdd,
    ReadonlyRootfs: service.readOnly,
    Tmpfs: service.tmpfs,
    ExtraHosts: service.extraHosts,
  };
  if (service.logging?.driver) hostConfig.LogConfig = { Type: service.logging.driver, Config: service.logging.options };
  else if (service.logging) hostConfig.LogConfig = { Type: 'json-file', Config: service.logging.options };
  if (service.memLimitBytes !== undefined) hostConfig.Memory = service.memLimitBytes;
  if (service.nanoCpus !== undefined) hostConfig.NanoCpus = service.nanoCpus;
  if (service.shmSizeBytes !== undefined) hostConfig.ShmSize = service.shmSizeBytes;
  if (service.init !== undefined) hostConfig.Init = service.init;

  const stopTimeoutS = service.stopGracePeriodS ?? DEFAULT_STOP_TIMEOUT_S;
  const create: Dockerode.ContainerCreateOptions = {
    name: containerName(stack.project, service.name),
    Image: pinnedImage,
    Env: Object.entries(service.environment)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`),
    ExposedPorts: exposedPorts,
    Labels: { ...service.labels },
    StopTimeout: stopTimeoutS,
    HostConfig: hostConfig,
  };
  if (service.command) create.Cmd = service.command;
  if (service.entrypoint) create.Entrypoint = service.entrypoint;
  if (service.user !== undefined) create.User = service.user;
  if (service.workingDir !== undefined) create.WorkingDir = service.workingDir;
  if (service.stopSignal !== undefined) create.StopSignal = service.stopSignal;
  if (service.hostname !== undefined) create.Hostname = service.hostname;
  if (service.healthcheck) {
    const h = service.healthcheck;
    create.Healthcheck = h.disabled
      ? { Test: ['NONE'] }
      : {
          Test: h.test,
          ...(h.intervalNs !== undefined && { Interval: h.intervalNs }),
          ...(h.timeoutNs !== undefined && { Timeout: h.timeoutNs }),
          ...(h.retries !== undefined && { Retries: h.retries }),
          ...(h.startPeriodNs !== undefined && { StartPeriod: h.startPeriodNs }),
        };
  }
  if (firstNetwork) {
    create.NetworkingConfig = { EndpointsConfig: { [firstNetwork.network]: { Aliases: firstNetwork.aliases } } };
  }

  const configHash = hashOf({ create, connect: otherNetworks });
  create.Labels = {
    ...create.Labels,
    [STACK_LABEL]: stack.project,
    [SERVICE_LABEL]: service.name,
    [CONFIG_HASH_LABEL]: configHash,
  };
  return { service: service.name, name: create.name!, configHash, create, connect: otherNetworks, stopTimeoutS };
}

export interface NetworkBlueprint {
  key: string;
  configHash: string;
  create: Dockerode.NetworkCreateOptions;
}

export function networkBlueprint(project: string, network: DesiredNetwork): NetworkBlueprint {
  const create: Dockerode.NetworkCreateOptions = {
    Name: network.dockerName,
    Driver: network.driver,
    Internal: network.internal,
    Options: network.driverOpts,
    Labels: { ...network.labels },
    CheckDuplicate: true,
  };
  const configHash = hashOf(create);
  create.Labels = { ...create.Labels, [STACK_LABEL]: project, [NETWORK_LABEL]: network.key, [CONFIG_HASH_LABEL]: configHash };
  return { key: network.key, configHash, create };
}

export interface VolumeBlueprint {
  key: string;
  create: { Name: string; Driver: string; DriverOpts: Record<string, string>; Labels: Record<string, string> };
}

export function volumeBlueprint(project: string, volume: DesiredVolume): VolumeBlueprint {
  return {
    key: volume.key,
    create: {
      Name: volume.dockerName,
      Driver: volume.driver,
      DriverOpts: volume.driverOpts,
      Labels: { ...volume.labels, [STACK_LABEL]: project, [VOLUME_LABEL]: volume.key },
    },
  };
}

/** sha256 over JSON with sorted keys, so key order in compose files does not matter. */
export function hashOf(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex').slice(0, 32);
}

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Docker reports Docker Hub images in their short form (`postgres@sha256:…`); the lock
 * may spell them out (`docker.io/library/postgres`). Compare in the short form.
 */
export function familiarReference(reference: string): string {
  return reference.replace(/^(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '').replace(/^library\//, '');
}
