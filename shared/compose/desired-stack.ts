/**
 * The stack as the agent wants it: compose files loaded, interpolated, validated,
 * merged and normalised into one shape the planner can compare with Docker's state.
 */
export type DependencyCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';
export const DEPENDENCY_CONDITIONS: readonly DependencyCondition[] = [
  'service_started',
  'service_healthy',
  'service_completed_successfully',
];

export type RestartPolicy =
  | { mode: 'no' }
  | { mode: 'always' }
  | { mode: 'unless-stopped' }
  | { mode: 'on-failure'; maxRetries?: number };

export interface PortBinding {
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIp?: string;
  /** Absent: Docker picks a free host port. */
  hostPort?: string;
}

export interface MountSpec {
  type: 'volume' | 'bind';
  /** Volume key from the top-level `volumes:` (type volume) or absolute host path (bind). */
  source: string;
  target: string;
  readOnly: boolean;
}

export interface DeviceMapping {
  pathOnHost: string;
  pathInContainer: string;
  permissions: string;
}

export type HealthcheckSpec =
  | { disabled: true }
  | {
      disabled: false;
      /** Docker's form: ['CMD', ...argv] or ['CMD-SHELL', script]. */
      test: string[];
      intervalNs?: number;
      timeoutNs?: number;
      retries?: number;
      startPeriodNs?: number;
    };

export interface DesiredService {
  name: string;
  /** The reference as written in compose (`repo:tag`), looked up in the image lock. */
  image: string;
  command?: string[];
  entrypoint?: string[];
  /** env_file contents first, then `environment:` on top; values already interpolated. */
  environment: Record<string, string>;
  ports: PortBinding[];
  mounts: MountSpec[];
  /** Network key -> extra aliases (the service name is always an alias). Empty with host networking. */
  networks: Record<string, { aliases: string[] }>;
  networkMode?: 'host';
  dependsOn: Record<string, { condition: DependencyCondition }>;
  healthcheck?: HealthcheckSpec;
  restart: RestartPolicy;
  labels: Record<string, string>;
  devices: DeviceMapping[];
  capAdd: string[];
  user?: string;
  workingDir?: string;
  readOnly: boolean;
  logging?: { driver?: string; options: Record<string, string> };
  memLimitBytes?: number;
  nanoCpus?: number;
  shmSizeBytes?: number;
  /** Path -> mount options (`size=64m`), '' for none. */
  tmpfs: Record<string, string>;
  /** `host:ip` entries, `host-gateway` allowed as ip. */
  extraHosts: string[];
  stopGracePeriodS?: number;
  stopSignal?: string;
  hostname?: string;
  init?: boolean;
}

export interface DesiredNetwork {
  key: string;
  /** Name in Docker: `name:` or `<project>_<key>`. */
  dockerName: string;
  external: boolean;
  driver: string;
  driverOpts: Record<string, string>;
  internal: boolean;
  labels: Record<string, string>;
}

export interface DesiredVolume {
  key: string;
  dockerName: string;
  external: boolean;
  driver: string;
  driverOpts: Record<string, string>;
  labels: Record<string, string>;
}

export interface DesiredStack {
  project: string;
  /** Directory relative paths were resolved against (the first file's directory). */
  projectDir: string;
  files: string[];
  services: Record<string, DesiredService>;
  /** Declared networks plus `default` when a service uses it. */
  networks: Record<string, DesiredNetwork>;
  volumes: Record<string, DesiredVolume>;
}

/** Services ordered so that every service comes after the services it depends on. */
export function dependencyOrder(stack: Pick<DesiredStack, 'services'>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]) => {
    const seen = state.get(name);
    if (seen === 'done') return;
    if (seen === 'visiting') throw new Error(`depends_on cycle: ${[...trail, name].join(' -> ')}`);
    state.set(name, 'visiting');
    for (const dep of Object.keys(stack.services[name]?.dependsOn ?? {}).sort()) visit(dep, [...trail, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const name of Object.keys(stack.services).sort()) visit(name, []);
  return order;
}
