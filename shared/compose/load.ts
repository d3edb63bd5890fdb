import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseDocument } from 'yaml';
import type { ZodIssue } from 'zod';
import { splitCommandLine } from './command-line.ts';
import {
  composeFileSchema,
  SUPPORTED_SERVICE_KEYS,
  SUPPORTED_TOP_LEVEL_KEYS,
  type RawNetwork,
  type RawService,
  type RawVolume,
} from './schema.ts';
import { parseByteSize, parseDurationNs, parseNanoCpus } from './units.ts';
import {
  dependencyOrder,
  type DependencyCondition,
  type DesiredNetwork,
  type DesiredService,
  type DesiredStack,
  type DesiredVolume,
  type DeviceMapping,
  type HealthcheckSpec,
  type MountSpec,
  type PortBinding,
  type RestartPolicy,
} from './desired-stack.ts';
import { ComposeError } from './errors.ts';
import { interpolateString, interpolateTree, TreeInterpolationError, type Variables } from './interpolate.ts';
import { describeInvalid, issuePath } from '../errors.ts';

export interface LoadComposeOptions {
  /** Compose files, merged in order (later files override earlier ones). */
  files: string[];
  /** Values for `${VAR}` interpolation (the agent's equivalent of the shell environment + `.env`). */
  variables?: Variables;
  /** Overrides the top-level `name:`; default: `name:`, else the first file's directory name. */
  projectName?: string;
}

export interface ComposeSource {
  file: string;
  text: string;
}

/** Reads, interpolates, validates and merges compose files into the desired stack. */
export async function loadComposeStack(options: LoadComposeOptions): Promise<DesiredStack> {
  if (options.files.length === 0) throw new ComposeError('no compose files given');
  const sources: ComposeSource[] = [];
  for (const file of options.files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ComposeError(`cannot read compose file ${file}: ${(error as Error).message}`, { file });
    }
    sources.push({ file: path.resolve(file), text });
  }
  return composeStackFromSources(sources, {
    variables: options.variables ?? {},
    projectName: options.projectName,
    readTextFile: async (p) => {
      try {
        return await readFile(p, 'utf8');
      } catch {
        return undefined;
      }
    },
  });
}

export interface ComposeSourceOptions {
  variables: Variables;
  projectName?: string;
  /** Project directory for relative paths; default: the first file's directory. */
  projectDir?: string;
  /** Reads an env_file; undefined when it does not exist. */
  readTextFile: (absolutePath: string) => Promise<string | undefined>;
}

/** The same as `loadComposeStack` for compose text already in memory (tests, bundled defaults). */
export async function composeStackFromSources(
  sources: ComposeSource[],
  options: ComposeSourceOptions,
): Promise<DesiredStack> {
  const first = sources[0];
  if (!first) throw new ComposeError('no compose files given');
  const projectDir = options.projectDir ?? path.dirname(path.resolve(first.file));
  const parsed = sources.map((source) => parseComposeFile(source, options.variables, projectDir));

  let name: string | undefined;
  let services: Record<string, PartialService> = {};
  const networks: Record<string, RawNetwork> = {};
  const volumes: Record<string, RawVolume> = {};
  const serviceFiles: Record<string, string> = {};
  for (const file of parsed) {
    if (file.name !== undefined) name = file.name;
    for (const [key, service] of Object.entries(file.services)) {
      services[key] = services[key] ? mergeServices(services[key], service) : service;
      serviceFiles[key] = file.file;
    }
    for (const [key, network] of Object.entries(file.networks)) networks[key] = { ...networks[key], ...network };
    for (const [key, volume] of Object.entries(file.volumes)) volumes[key] = { ...volumes[key], ...volume };
  }

  const project = projectNameFrom(options.projectName ?? name, projectDir, first.file);
  if (Object.keys(services).length === 0) {
    throw new ComposeError(`${first.file}: defines no services`, { file: first.file, key: 'services' }, 'a stack needs at least one service with an image');
  }
  refuseNamesDifferingInCase(serviceFiles);
  const desiredServices: Record<string, DesiredService> = {};
  for (const [key, service] of Object.entries(services)) {
    // `required: false` makes a dependency on a service this stack does not define a no-op.
    for (const [dep, { required }] of Object.entries(service.dependsOn)) {
      if (!required && !services[dep]) delete service.dependsOn[dep];
    }
    desiredServices[key] = await finalizeService(key, service, {
      file: serviceFiles[key]!,
      projectDir,
      variables: options.variables,
      readTextFile: options.readTextFile,
    });
  }
  services = {};

  const desiredNetworks: Record<string, DesiredNetwork> = {};
  for (const [key, raw] of Object.entries(networks)) desiredNetworks[key] = networkFrom(key, raw, project);
  const desiredVolumes: Record<string, DesiredVolume> = {};
  for (const [key, raw] of Object.entries(volumes)) desiredVolumes[key] = volumeFrom(key, raw, project);

  // Cross-references, checked after merging because override files may add either side.
  for (const service of Object.values(desiredServices)) {
    const file = serviceFiles[service.name]!;
    const at = (key: string) => ({ file, service: service.name, key });
    for (const network of Object.keys(service.networks)) {
      if (network === 'default' && !desiredNetworks.default) {
        desiredNetworks.default = networkFrom('default', {}, project);
      } else if (!desiredNetworks[network]) {
        throw new ComposeError(
          `${file}: service "${service.name}" uses network "${network}", which is not declared under top-level networks:`,
          at('networks'),
        );
      }
    }
    for (const mount of service.mounts) {
      if (mount.type === 'volume' && !desiredVolumes[mount.source]) {
        throw new ComposeError(
          `${file}: service "${service.name}" mounts volume "${mount.source}", which is not declared under top-level volumes:`,
          at('volumes'),
        );
      }
    }
    for (const [dep, { condition }] of Object.entries(service.dependsOn)) {
      const target = desiredServices[dep];
      if (!target) {
        throw new ComposeError(`${file}: service "${service.name}" depends on undefined service "${dep}"`, at('depends_on'));
      }
      if (condition === 'service_healthy' && (!target.healthcheck || target.healthcheck.disabled)) {
        throw new ComposeError(
          `${file}: service "${service.name}" waits for "${dep}" to be healthy, but "${dep}" has no healthcheck`,
          at('depends_on'),
          `give "${dep}" a healthcheck or use condition: service_started`,
        );
      }
    }
  }
  try {
    dependencyOrder({ services: desiredServices });
  } catch (error) {
    throw new ComposeError(`${first.file}: ${(error as Error).message}`, { file: first.file, key: 'depends_on' });
  }

  return {
    project,
    projectDir,
    files: sources.map((s) => s.file),
    services: desiredServices,
    networks: desiredNetworks,
    volumes: desiredVolumes,
  };
}

/** Network aliases are DNS names, which ignore case: `web` and `Web` would answer for each other. */
function refuseNamesDifferingInCase(serviceFiles: Record<string, string>): void {
  const byLowerCase = new Map<string, string>();
  for (const name of Object.keys(serviceFiles)) {
    const other = byLowerCase.get(name.toLowerCase());
    if (other !== undefined) {
      throw new ComposeError(
        `services "${other}" (${serviceFiles[other]}) and "${name}" (${serviceFiles[name]}) differ only in letter case`,
        { file: serviceFiles[name], service: name },
        'rename one of them: service names become DNS names on the stack\'s networks, and DNS ignores case',
      );
    }
    byLowerCase.set(name.toLowerCase(), name);
  }
}

function projectNameFrom(explicit: string | undefined, projectDir: string, file: string): string {
  const candidate = explicit ?? path.basename(projectDir).toLowerCase().replace(/[^a-z0-9_-]/g, '');
  if (!/^[a-z0-9][a-z0-9_-]*$/.test(candidate)) {
    throw new ComposeError(
      `${file}: project name "${candidate}" is invalid`,
      { file, key: 'name' },
      'use lowercase letters, digits, "-" and "_", starting with a letter or digit',
    );
  }
  return candidate;
}

// ---------------------------------------------------------------------------------
// One file: parse, check keys, interpolate, validate, normalise.

interface ParsedFile {
  file: string;
  name?: string;
  services: Record<string, PartialService>;
  networks: Record<string, RawNetwork>;
  volumes: Record<string, RawVolume>;
}

/**
 * One compose file as YAML gives it, before interpolation: anchors and merge keys
 * resolved, `x-*` extension keys dropped. Refuses YAML errors and a file that is empty or
 * not a mapping.
 */
export function readComposeDocument(source: ComposeSource): Record<string, unknown> {
  const { file } = source;
  const doc = parseDocument(source.text, { merge: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ComposeError(`${file}: invalid YAML: ${doc.errors[0]!.message}`, { file });
  }
  const tree = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (tree === null || tree === undefined) {
    throw new ComposeError(`${file}: is empty`, { file }, 'a compose file needs services:; an override that changes nothing says services: {}');
  }
  if (typeof tree !== 'object' || Array.isArray(tree)) {
    throw new ComposeError(`${file}: a compose file must be a mapping with services:`, { file });
  }
  return dropExtensionKeys(tree as Record<string, unknown>);
}

function parseComposeFile(source: ComposeSource, variables: Variables, projectDir: string): ParsedFile {
  const { file } = source;
  const withoutExtensions = readComposeDocument(source);
  checkSupportedKeys(file, withoutExtensions);

  let interpolated: unknown;
  try {
    interpolated = interpolateTree(withoutExtensions, variables);
  } catch (error) {
    if (error instanceof TreeInterpolationError) {
      const [section, service, ...rest] = error.path;
      const isService = section === 'services' && service !== undefined;
      throw new ComposeError(
        `${file}: ${isService ? `service "${service}": key "${rest.join('.')}"` : `key "${error.path.join('.')}"`}: ${error.message}`,
        { file, service: isService ? service : undefined, key: (isService ? rest : error.path).join('.') },
      );
    }
    throw error;
  }

  const result = composeFileSchema.safeParse(interpolated);
  if (!result.success) throw schemaError(file, result.error.issues);
  const raw = result.data;
  const services: Record<string, PartialService> = {};
  for (const [key, rawService] of Object.entries(raw.services ?? {})) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]*$/.test(key)) {
      throw new ComposeError(`${file}: service name "${key}" is invalid`, { file, service: key });
    }
    try {
      services[key] = normalizeService(rawService ?? {}, { projectDir, variables });
    } catch (error) {
      if (error instanceof KeyedError) {
        throw new ComposeError(`${file}: service "${key}": key "${error.key}": ${error.message}`, {
          file,
          service: key,
          key: error.key,
        });
      }
      throw error;
    }
  }
  return {
    file,
    name: raw.name,
    services,
    networks: mapNulls(raw.networks ?? {}),
    volumes: mapNulls(raw.volumes ?? {}),
  };
}

function mapNulls<T>(record: Record<string, T | null>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, v ?? ({} as T)]));
}

/** `x-*` extension fields are compose's documented place for anchors and notes; they have no effect. */
function dropExtensionKeys(tree: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(tree)) {
    if (key.startsWith('x-')) continue;
    if (key === 'services' && value && typeof value === 'object' && !Array.isArray(value)) {
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, service]) => [
          name,
          service && typeof service === 'object' && !Array.isArray(service)
            ? Object.fromEntries(Object.entries(service).filter(([k]) => !k.startsWith('x-')))
            : service,
        ]),
      );
    } else {
      out[key] = value;
    }
  }
  return out;
}

const SUPPORTED_HINT = 'see shared/compose/COMPOSE-SUBSET.md for the keys the memu agent supports';

function checkSupportedKeys(file: string, tree: Record<string, unknown>): void {
  for (const key of Object.keys(tree)) {
    if (!(SUPPORTED_TOP_LEVEL_KEYS as readonly string[]).includes(key)) {
      throw new ComposeError(`${file}: top-level key "${key}" is not supported`, { file, key }, SUPPORTED_HINT);
    }
  }
  const services = tree.services;
  if (!services || typeof services !== 'object' || Array.isArray(services)) return;
  for (const [name, service] of Object.entries(services)) {
    if (!service || typeof service !== 'object' || Array.isArray(service)) continue;
    for (const key of Object.keys(service)) {
      if (!(SUPPORTED_SERVICE_KEYS as readonly string[]).includes(key)) {
        throw new ComposeError(
          `${file}: service "${name}": key "${key}" is not supported`,
          { file, service: name, key },
          SUPPORTED_HINT,
        );
      }
    }
  }
}

/** Every schema problem of one file, in the shared wording; the location is the first problem's. */
function schemaError(file: string, issues: readonly ZodIssue[]): ComposeError {
  const first = issues[0]!;
  let keyPath: (string | number)[] = first.path;
  let service: string | undefined;
  if (keyPath[0] === 'services' && keyPath[1] !== undefined) {
    service = String(keyPath[1]);
    keyPath = keyPath.slice(2);
  }
  if (first.code === 'unrecognized_keys') keyPath = [...keyPath, first.keys[0]!];
  const hint = issues.some((issue) => issue.code === 'unrecognized_keys') ? SUPPORTED_HINT : undefined;
  return new ComposeError(describeInvalid(file, issues), { file, service, key: issuePath(keyPath) }, hint);
}

class KeyedError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

function keyed<T>(key: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof KeyedError) throw error;
    throw new KeyedError(key, (error as Error).message);
  }
}

// ---------------------------------------------------------------------------------
// Normalised, still-partial service (one file) and merging.

interface PartialHealthcheck {
  test?: string[];
  intervalNs?: number;
  timeoutNs?: number;
  retries?: number;
  startPeriodNs?: number;
  disabled?: boolean;
}

export interface PartialService {
  image?: string;
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment: Record<string, string>;
  envFiles: { path: string; required: boolean }[];
  ports: PortBinding[];
  mounts: MountSpec[];
  networks?: Record<string, { aliases: string[] }>;
  networkMode?: 'host';
  dependsOn: Record<string, { condition: DependencyCondition; required: boolean }>;
  healthcheck?: PartialHealthcheck;
  restart?: RestartPolicy;
  labels: Record<string, string>;
  devices: DeviceMapping[];
  capAdd: string[];
  user?: string;
  workingDir?: string;
  readOnly?: boolean;
  logging?: { driver?: string; options: Record<string, string> };
  memLimitBytes?: number;
  nanoCpus?: number;
  shmSizeBytes?: number;
  tmpfs: Record<string, string>;
  extraHosts: Record<string, string>;
  stopGracePeriodS?: number;
  stopSignal?: string;
  hostname?: string;
  init?: boolean;
}

interface NormalizeContext {
  projectDir: string;
  variables: Variables;
}

function normalizeService(raw: RawService, ctx: NormalizeContext): PartialService {
  const out: PartialService = {
    environment: {},
    envFiles: [],
    ports: [],
    mounts: [],
    dependsOn: {},
    labels: {},
    devices: [],
    capAdd: [],
    tmpfs: {},
    extraHosts: {},
  };
  if (raw.image !== undefined) out.image = raw.image;
  if (raw.command !== undefined) out.command = keyed('command', () => argvFrom(raw.command!));
  if (raw.entrypoint !== undefined) out.entrypoint = keyed('entrypoint', () => argvFrom(raw.entrypoint!));
  if (raw.environment !== undefined) {
    out.environment = keyed('environment', () => environmentFrom(raw.environment!, ctx.variables));
  }
  if (raw.env_file !== undefined) {
    const list = typeof raw.env_file === 'string' ? [raw.env_file] : raw.env_file;
    out.envFiles = list.map((entry) =>
      typeof entry === 'string'
        ? { path: resolveHostPath(entry, ctx.projectDir), required: true }
        : { path: resolveHostPath(entry.path, ctx.projectDir), required: entry.required ?? true },
    );
  }
  if (raw.ports) out.ports = keyed('ports', () => raw.ports!.flatMap(portsFrom));
  if (raw.volumes) out.mounts = keyed('volumes', () => raw.volumes!.map((v) => mountFrom(v, ctx.projectDir)));
  if (raw.networks !== undefined) {
    out.networks = Array.isArray(raw.networks)
      ? Object.fromEntries(raw.networks.map((n) => [n, { aliases: [] }]))
      : Object.fromEntries(Object.entries(raw.networks).map(([n, v]) => [n, { aliases: v?.aliases ?? [] }]));
  }
  if (raw.network_mode !== undefined) out.networkMode = raw.network_mode;
  if (raw.depends_on !== undefined) {
    out.dependsOn = Array.isArray(raw.depends_on)
      ? Object.fromEntries(raw.depends_on.map((d) => [d, { condition: 'service_started' as const, required: true }]))
      : Object.fromEntries(
          Object.entries(raw.depends_on).map(([d, v]) => [
            d,
            { condition: v.condition ?? 'service_started', required: v.required ?? true },
          ]),
        );
  }
  if (raw.healthcheck) out.healthcheck = keyed('healthcheck', () => healthcheckFrom(raw.healthcheck!));
  if (raw.restart !== undefined) out.restart = keyed('restart', () => restartFrom(raw.restart!));
  if (raw.labels !== undefined) out.labels = keyed('labels', () => labelsFrom(raw.labels!));
  if (raw.devices) out.devices = keyed('devices', () => raw.devices!.map(deviceFrom));
  if (raw.cap_add) out.capAdd = [...raw.cap_add];
  if (raw.user !== undefined) out.user = String(raw.user);
  if (raw.working_dir !== undefined) out.workingDir = raw.working_dir;
  if (raw.read_only !== undefined) out.readOnly = raw.read_only;
  if (raw.logging) {
    out.logging = {
      driver: raw.logging.driver,
      options: Object.fromEntries(
        Object.entries(raw.logging.options ?? {})
          .filter(([, v]) => v !== null)
          .map(([k, v]) => [k, String(v)]),
      ),
    };
  }
  if (raw.mem_limit !== undefined) out.memLimitBytes = keyed('mem_limit', () => parseByteSize(raw.mem_limit!));
  if (raw.shm_size !== undefined) out.shmSizeBytes = keyed('shm_size', () => parseByteSize(raw.shm_size!));
  if (raw.cpus !== undefined) out.nanoCpus = keyed('cpus', () => parseNanoCpus(raw.cpus!));
  if (raw.tmpfs !== undefined) {
    const list = typeof raw.tmpfs === 'string' ? [raw.tmpfs] : raw.tmpfs;
    out.tmpfs = keyed('tmpfs', () =>
      Object.fromEntries(
        list.map((entry) => {
          const [target, ...options] = entry.split(':');
          if (!target?.startsWith('/')) throw new Error(`"${entry}" must be an absolute container path`);
          return [target, options.join(':')];
        }),
      ),
    );
  }
  if (raw.extra_hosts !== undefined) out.extraHosts = keyed('extra_hosts', () => extraHostsFrom(raw.extra_hosts!));
  if (raw.stop_grace_period !== undefined) {
    out.stopGracePeriodS = keyed('stop_grace_period', () => Math.ceil(parseDurationNs(raw.stop_grace_period!) / 1e9));
  }
  if (raw.stop_signal !== undefined) out.stopSignal = raw.stop_signal;
  if (raw.hostname !== undefined) out.hostname = raw.hostname;
  if (raw.init !== undefined) out.init = raw.init;
  return out;
}

function argvFrom(value: string | (string | number)[] | null): string[] | null {
  if (value === null) return null;
  if (typeof value === 'string') return splitCommandLine(value);
  return value.map(String);
}

function environmentFrom(value: Record<string, unknown> | string[], variables: Variables): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(value)) {
    for (const entry of value) {
      const eq = entry.indexOf('=');
      if (eq === 0) throw new Error(`"${entry}" has no variable name`);
      if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
      // `KEY` alone passes the variable through, as compose does from the shell; unset -> absent.
      else if (variables[entry] !== undefined) out[entry] = variables[entry]!;
    }
  } else {
    for (const [key, v] of Object.entries(value)) {
      if (v === null || v === undefined) {
        if (variables[key] !== undefined) out[key] = variables[key]!;
      } else out[key] = String(v);
    }
  }
  return out;
}

function labelsFrom(value: Record<string, unknown> | string[]): Record<string, string> {
  if (!Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v)]));
  }
  return Object.fromEntries(
    value.map((entry) => {
      const eq = entry.indexOf('=');
      return eq < 0 ? [entry, ''] : [entry.slice(0, eq), entry.slice(eq + 1)];
    }),
  );
}

function extraHostsFrom(value: string[] | Record<string, string>): Record<string, string> {
  if (!Array.isArray(value)) return { ...value };
  const out: Record<string, string> = {};
  for (const entry of value) {
    // `host:ip` (classic) or `host=ip` (newer compose); an IPv6 ip contains ':' itself.
    const eq = entry.indexOf('=');
    const sep = eq > 0 ? eq : entry.indexOf(':');
    if (sep <= 0) throw new Error(`"${entry}" must be "hostname:ip" (ip may be host-gateway)`);
    out[entry.slice(0, sep)] = entry.slice(sep + 1).replace(/^\[(.*)\]$/, '$1');
  }
  return out;
}

function restartFrom(value: string | false): RestartPolicy {
  if (value === false || value === 'no') return { mode: 'no' };
  if (value === 'always' || value === 'unless-stopped') return { mode: value };
  const onFailure = /^on-failure(?::(\d+))?$/.exec(value);
  if (onFailure) return onFailure[1] ? { mode: 'on-failure', maxRetries: Number(onFailure[1]) } : { mode: 'on-failure' };
  throw new Error(`"${value}" is not one of no, always, unless-stopped, on-failure[:N]`);
}

function healthcheckFrom(raw: NonNullable<RawService['healthcheck']>): PartialHealthcheck {
  const out: PartialHealthcheck = {};
  if (raw.disable !== undefined) out.disabled = raw.disable;
  if (raw.test !== undefined) {
    if (typeof raw.test === 'string') out.test = ['CMD-SHELL', raw.test];
    else {
      const [kind] = raw.test;
      if (kind === 'NONE') out.disabled = true;
      else if (kind === 'CMD' || kind === 'CMD-SHELL') out.test = [...raw.test];
      else throw new Error('a test list must start with "CMD", "CMD-SHELL" or "NONE"');
    }
  }
  if (raw.interval !== undefined) out.intervalNs = parseDurationNs(raw.interval);
  if (raw.timeout !== undefined) out.timeoutNs = parseDurationNs(raw.timeout);
  if (raw.start_period !== undefined) out.startPeriodNs = parseDurationNs(raw.start_period);
  if (raw.retries !== undefined) out.retries = raw.retries;
  return out;
}

/** Short (`[[ip:]host:]container[/proto]`, ranges allowed) or long port syntax. */
function portsFrom(entry: string | number | Exclude<NonNullable<RawService['ports']>[number], string | number>): PortBinding[] {
  if (typeof entry === 'number') return [{ containerPort: checkPort(entry), protocol: 'tcp' }];
  if (typeof entry === 'object') {
    const binding: PortBinding = { containerPort: entry.target, protocol: entry.protocol ?? 'tcp' };
    if (entry.host_ip) binding.hostIp = entry.host_ip;
    if (entry.published !== undefined && entry.published !== '') binding.hostPort = String(entry.published);
    return [binding];
  }
  let spec = entry;
  let protocol: PortBinding['protocol'] = 'tcp';
  const slash = spec.lastIndexOf('/');
  if (slash >= 0) {
    const p = spec.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp' && p !== 'sctp') throw new Error(`"${entry}": unknown protocol "${p}"`);
    protocol = p;
    spec = spec.slice(0, slash);
  }
  let hostIp: string | undefined;
  if (spec.startsWith('[')) {
    const close = spec.indexOf(']:');
    if (close < 0) throw new Error(`"${entry}" is not a port mapping`);
    hostIp = spec.slice(1, close);
    spec = spec.slice(close + 2);
  }
  const parts = spec.split(':');
  let hostPart: string | undefined;
  let containerPart: string;
  if (parts.length === 1) containerPart = parts[0]!;
  else if (parts.length === 2) [hostPart, containerPart] = parts as [string, string];
  else if (parts.length === 3 && hostIp === undefined) [hostIp, hostPart, containerPart] = parts as [string, string, string];
  else throw new Error(`"${entry}" is not a port mapping like "8080:80" or "127.0.0.1:8080:80"`);
  const containers = portRange(containerPart, entry);
  const hosts = hostPart ? portRange(hostPart, entry) : undefined;
  if (hosts && hosts.length !== containers.length) {
    throw new Error(`"${entry}": host and container port ranges must have the same length`);
  }
  return containers.map((containerPort, i) => {
    const binding: PortBinding = { containerPort, protocol };
    if (hostIp) binding.hostIp = hostIp;
    if (hosts) binding.hostPort = String(hosts[i]);
    return binding;
  });
}

function portRange(text: string, entry: string): number[] {
  const match = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!match) throw new Error(`"${entry}" is not a port mapping`);
  const start = checkPort(Number(match[1]));
  const end = match[2] ? checkPort(Number(match[2])) : start;
  if (end < start) throw new Error(`"${entry}": port range ends before it starts`);
  return Array.from({ length: end - start + 1 }, (_, i) => start + i);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${port} is not a port number`);
  return port;
}

function isHostPath(source: string): boolean {
  return source.startsWith('/') || source.startsWith('.') || source.startsWith('~');
}

function resolveHostPath(source: string, projectDir: string): string {
  if (source === '~' || source.startsWith('~/')) return path.join(os.homedir(), source.slice(1));
  return path.resolve(projectDir, source);
}

function mountFrom(entry: string | Exclude<NonNullable<RawService['volumes']>[number], string>, projectDir: string): MountSpec {
  if (typeof entry === 'object') {
    if (!entry.target.startsWith('/')) throw new Error(`target "${entry.target}" must be an absolute container path`);
    return {
      type: entry.type,
      source: entry.type === 'bind' ? resolveHostPath(entry.source, projectDir) : entry.source,
      target: entry.target,
      readOnly: entry.read_only ?? false,
    };
  }
  const parts = entry.split(':');
  if (parts.length < 2) {
    throw new Error(`"${entry}": anonymous volumes are not supported; name the volume ("data:${entry}") so it survives recreation`);
  }
  if (parts.length > 3) throw new Error(`"${entry}" is not "source:target[:ro]"`);
  const [source, target, mode] = parts as [string, string, string | undefined];
  if (!target.startsWith('/')) throw new Error(`"${entry}": target must be an absolute container path`);
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') throw new Error(`"${entry}": mode must be ro or rw`);
  if (isHostPath(source)) return { type: 'bind', source: resolveHostPath(source, projectDir), target, readOnly: mode === 'ro' };
  return { type: 'volume', source, target, readOnly: mode === 'ro' };
}

function deviceFrom(entry: string): DeviceMapping {
  const [pathOnHost, pathInContainer, permissions] = entry.split(':');
  if (!pathOnHost?.startsWith('/')) throw new Error(`"${entry}" must start with an absolute host path like /dev/hailo0`);
  if (permissions !== undefined && !/^[rwm]+$/.test(permissions)) throw new Error(`"${entry}": permissions must be made of r, w, m`);
  return { pathOnHost, pathInContainer: pathInContainer || pathOnHost, permissions: permissions || 'rwm' };
}

/**
 * Compose's merge rules, as implemented here (later file = `b`):
 * scalars, command, entrypoint, healthcheck fields, logging driver: b wins;
 * environment, labels, depends_on, networks, extra_hosts (by host), tmpfs (by path),
 * logging options (same driver): merged by key, b wins;
 * ports: appended, exact duplicates dropped; volumes and devices: merged by container
 * path (b replaces a mount at the same target); cap_add, env_file: appended, deduplicated.
 */
export function mergeServices(a: PartialService, b: PartialService): PartialService {
  const merged: PartialService = { ...a };
  for (const [key, value] of Object.entries(b) as [keyof PartialService, unknown][]) {
    if (value !== undefined) (merged as unknown as Record<string, unknown>)[key] = value;
  }
  merged.environment = { ...a.environment, ...b.environment };
  merged.labels = { ...a.labels, ...b.labels };
  merged.dependsOn = { ...a.dependsOn, ...b.dependsOn };
  merged.extraHosts = { ...a.extraHosts, ...b.extraHosts };
  merged.tmpfs = { ...a.tmpfs, ...b.tmpfs };
  if (a.networks || b.networks) merged.networks = { ...a.networks, ...b.networks };
  const seenPorts = new Set<string>();
  merged.ports = [...a.ports, ...b.ports].filter((p) => {
    const key = JSON.stringify([p.containerPort, p.protocol, p.hostIp ?? '', p.hostPort ?? '']);
    if (seenPorts.has(key)) return false;
    seenPorts.add(key);
    return true;
  });
  merged.mounts = [...a.mounts.filter((m) => !b.mounts.some((n) => n.target === m.target)), ...b.mounts];
  merged.devices = [
    ...a.devices.filter((d) => !b.devices.some((n) => n.pathInContainer === d.pathInContainer)),
    ...b.devices,
  ];
  merged.capAdd = [...new Set([...a.capAdd, ...b.capAdd])];
  merged.envFiles = [...a.envFiles, ...b.envFiles.filter((f) => !a.envFiles.some((e) => e.path === f.path))];
  if (a.healthcheck && b.healthcheck) merged.healthcheck = { ...a.healthcheck, ...b.healthcheck };
  if (a.logging && b.logging) {
    const sameDriver = b.logging.driver === undefined || b.logging.driver === a.logging.driver;
    merged.logging = sameDriver
      ? { driver: a.logging.driver, options: { ...a.logging.options, ...b.logging.options } }
      : b.logging;
  }
  return merged;
}

// ---------------------------------------------------------------------------------
// Merged service -> desired service.

async function finalizeService(
  name: string,
  service: PartialService,
  ctx: { file: string; projectDir: string; variables: Variables; readTextFile: ComposeSourceOptions['readTextFile'] },
): Promise<DesiredService> {
  const at = (key: string) => ({ file: ctx.file, service: name, key });
  const fail = (key: string, message: string, hint?: string): never => {
    throw new ComposeError(`${ctx.file}: service "${name}": key "${key}": ${message}`, at(key), hint);
  };
  if (!service.image) {
    throw new ComposeError(`${ctx.file}: service "${name}" has no image`, at('image'), 'the agent runs locked images; `build:` is not supported');
  }
  if (service.networkMode === 'host') {
    if (service.networks) fail('networks', 'cannot be combined with network_mode: host');
    if (service.ports.length > 0) fail('ports', 'published ports have no effect with network_mode: host; remove them');
  }

  const environment: Record<string, string> = {};
  for (const envFile of service.envFiles) {
    const text = await ctx.readTextFile(envFile.path);
    if (text === undefined) {
      if (envFile.required) fail('env_file', `cannot read ${envFile.path}`, 'create the file or mark it required: false');
      continue;
    }
    try {
      Object.assign(environment, parseEnvFile(text, ctx.variables));
    } catch (error) {
      fail('env_file', `${envFile.path}: ${(error as Error).message}`);
    }
  }
  Object.assign(environment, service.environment);

  let healthcheck: HealthcheckSpec | undefined;
  if (service.healthcheck) {
    const h = service.healthcheck;
    if (h.disabled) healthcheck = { disabled: true };
    else if (!h.test) fail('healthcheck', 'has no test');
    else {
      healthcheck = { disabled: false, test: h.test };
      if (h.intervalNs !== undefined) healthcheck.intervalNs = h.intervalNs;
      if (h.timeoutNs !== undefined) healthcheck.timeoutNs = h.timeoutNs;
      if (h.retries !== undefined) healthcheck.retries = h.retries;
      if (h.startPeriodNs !== undefined) healthcheck.startPeriodNs = h.startPeriodNs;
    }
  }

  const dependsOn: DesiredService['dependsOn'] = {};
  for (const [dep, { condition }] of Object.entries(service.dependsOn)) dependsOn[dep] = { condition };

  const desired: DesiredService = {
    name,
    image: service.image,
    environment,
    ports: service.ports,
    mounts: service.mounts,
    networks: service.networkMode === 'host' ? {} : (service.networks ?? { default: { aliases: [] } }),
    dependsOn,
    restart: service.restart ?? { mode: 'no' },
    labels: service.labels,
    devices: service.devices,
    capAdd: service.capAdd,
    readOnly: service.readOnly ?? false,
    tmpfs: service.tmpfs,
    extraHosts: Object.entries(service.extraHosts).map(([host, ip]) => `${host}:${ip}`),
  };
  if (service.command) desired.command = service.command;
  if (service.entrypoint) desired.entrypoint = service.entrypoint;
  if (service.networkMode) desired.networkMode = service.networkMode;
  if (healthcheck) desired.healthcheck = healthcheck;
  if (service.user !== undefined) desired.user = service.user;
  if (service.workingDir !== undefined) desired.workingDir = service.workingDir;
  if (service.logging) desired.logging = service.logging;
  if (service.memLimitBytes !== undefined) desired.memLimitBytes = service.memLimitBytes;
  if (service.nanoCpus !== undefined) desired.nanoCpus = service.nanoCpus;
  if (service.shmSizeBytes !== undefined) desired.shmSizeBytes = service.shmSizeBytes;
  if (service.stopGracePeriodS !== undefined) desired.stopGracePeriodS = service.stopGracePeriodS;
  if (service.stopSignal !== undefined) desired.stopSignal = service.stopSignal;
  if (service.hostname !== undefined) desired.hostname = service.hostname;
  if (service.init !== undefined) desired.init = service.init;
  return desired;
}

/**
 * `.env`-style file: `KEY=VALUE` lines, `#` comments, optional `export `, single quotes
 * literal, double quotes and bare values interpolated like compose does.
 */
export function parseEnvFile(text: string, variables: Variables): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (const [index, rawLine] of lines.entries()) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new Error(`line ${index + 1}: expected KEY=VALUE`);
    const [, key, rest] = match as unknown as [string, string, string];
    let value: string;
    if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) throw new Error(`line ${index + 1}: unterminated quote`);
      value = rest.slice(1, end);
    } else if (rest.startsWith('"')) {
      const end = rest.lastIndexOf('"');
      if (end <= 0) throw new Error(`line ${index + 1}: unterminated quote`);
      value = interpolateString(rest.slice(1, end).replace(/\\n/g, '\n').replace(/\\"/g, '"'), { ...variables, ...out });
    } else {
      value = interpolateString(rest.replace(/\s+#.*$/, ''), { ...variables, ...out });
    }
    out[key] = value;
  }
  return out;
}

function networkFrom(key: string, raw: RawNetwork, project: string): DesiredNetwork {
  return {
    key,
    dockerName: raw.name ?? `${project}_${key}`,
    external: raw.external ?? false,
    driver: raw.driver ?? 'bridge',
    driverOpts: Object.fromEntries(Object.entries(raw.driver_opts ?? {}).map(([k, v]) => [k, String(v)])),
    internal: raw.internal ?? false,
    labels: raw.labels ? labelsFrom(raw.labels) : {},
  };
}

function volumeFrom(key: string, raw: RawVolume, project: string): DesiredVolume {
  return {
    key,
    dockerName: raw.name ?? `${project}_${key}`,
    external: raw.external ?? false,
    driver: raw.driver ?? 'local',
    driverOpts: Object.fromEntries(Object.entries(raw.driver_opts ?? {}).map(([k, v]) => [k, String(v)])),
    labels: raw.labels ? labelsFrom(raw.labels) : {},
  };
}
