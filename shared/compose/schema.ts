import { z } from 'zod';

/**
 * The supported subset of the compose specification, as zod schemas of ONE compose
 * file before merging (every key optional, so override files can be partial).
 * Documented for humans in `COMPOSE-SUBSET.md`; a key outside it is an error.
 */
export const SUPPORTED_TOP_LEVEL_KEYS = ['name', 'services', 'networks', 'volumes', 'version'] as const;

export const SUPPORTED_SERVICE_KEYS = [
  'image',
  'command',
  'entrypoint',
  'environment',
  'env_file',
  'ports',
  'volumes',
  'networks',
  'depends_on',
  'healthcheck',
  'restart',
  'labels',
  'devices',
  'cap_add',
  'network_mode',
  'user',
  'logging',
  'mem_limit',
  'cpus',
  'working_dir',
  'read_only',
  'tmpfs',
  'extra_hosts',
  'stop_grace_period',
  // small, safe additions beyond the agreed list
  'shm_size',
  'stop_signal',
  'hostname',
  'init',
] as const;

const scalar = z.union([z.string(), z.number(), z.boolean()]);
/** `KEY: value` map (values may be null) or `KEY=value` list, as compose allows for environment/labels. */
const mapOrList = z.union([z.record(z.string(), scalar.nullable()), z.array(z.string())]);
const stringOrNumber = z.union([z.string(), z.number()]);
const argv = z.union([z.string(), z.array(stringOrNumber)]);

const healthcheck = z
  .object({
    test: z.union([z.string(), z.array(z.string())]).optional(),
    interval: z.string().optional(),
    timeout: z.string().optional(),
    retries: z.number().int().min(0).optional(),
    start_period: z.string().optional(),
    disable: z.boolean().optional(),
  })
  .strict();

const dependsOnLong = z
  .object({
    condition: z.enum(['service_started', 'service_healthy', 'service_completed_successfully']).optional(),
    /** `docker compose config` writes `required: true`; false makes a missing service acceptable. */
    required: z.boolean().optional(),
  })
  .strict();

const portLong = z
  .object({
    target: z.number().int().min(1).max(65535),
    published: stringOrNumber.optional(),
    host_ip: z.string().optional(),
    protocol: z.enum(['tcp', 'udp', 'sctp']).optional(),
    /** One host: both modes mean the same here; `docker compose config` writes `ingress`. */
    mode: z.enum(['host', 'ingress']).optional(),
  })
  .strict();

const volumeLong = z
  .object({
    type: z.enum(['volume', 'bind']),
    source: z.string(),
    target: z.string(),
    read_only: z.boolean().optional(),
    bind: z.object({ create_host_path: z.boolean().optional() }).strict().optional(),
    volume: z.object({ nocopy: z.literal(false).optional() }).strict().optional(),
  })
  .strict();

export const serviceSchema = z
  .object({
    image: z.string().optional(),
    command: argv.nullable().optional(),
    entrypoint: argv.nullable().optional(),
    environment: mapOrList.optional(),
    env_file: z
      .union([
        z.string(),
        z.array(z.union([z.string(), z.object({ path: z.string(), required: z.boolean().optional() }).strict()])),
      ])
      .optional(),
    ports: z.array(z.union([z.string(), z.number(), portLong])).optional(),
    volumes: z.array(z.union([z.string(), volumeLong])).optional(),
    networks: z
      .union([
        z.array(z.string()),
        z.record(z.string(), z.object({ aliases: z.array(z.string()).optional() }).strict().nullable()),
      ])
      .optional(),
    depends_on: z.union([z.array(z.string()), z.record(z.string(), dependsOnLong)]).optional(),
    healthcheck: healthcheck.optional(),
    restart: z.union([z.string(), z.literal(false)]).optional(),
    labels: mapOrList.optional(),
    devices: z.array(z.string()).optional(),
    cap_add: z.array(z.string()).optional(),
    network_mode: z.literal('host').optional(),
    user: stringOrNumber.optional(),
    logging: z
      .object({
        driver: z.string().optional(),
        options: z.record(z.string(), stringOrNumber.nullable()).optional(),
      })
      .strict()
      .optional(),
    mem_limit: stringOrNumber.optional(),
    cpus: stringOrNumber.optional(),
    working_dir: z.string().optional(),
    read_only: z.boolean().optional(),
    tmpfs: z.union([z.string(), z.array(z.string())]).optional(),
    extra_hosts: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
    stop_grace_period: z.string().optional(),
    shm_size: stringOrNumber.optional(),
    stop_signal: z.string().optional(),
    hostname: z.string().optional(),
    init: z.boolean().optional(),
  })
  .strict();

const networkSchema = z
  .object({
    name: z.string().optional(),
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), stringOrNumber).optional(),
    internal: z.boolean().optional(),
    labels: mapOrList.optional(),
    external: z.boolean().optional(),
  })
  .strict();

const volumeSchema = z
  .object({
    name: z.string().optional(),
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), stringOrNumber).optional(),
    labels: mapOrList.optional(),
    external: z.boolean().optional(),
  })
  .strict();

export const composeFileSchema = z
  .object({
    name: z.string().optional(),
    /** Obsolete in the compose spec; accepted and ignored exactly like the compose CLI does. */
    version: stringOrNumber.optional(),
    services: z.record(z.string(), serviceSchema.nullable()).optional(),
    networks: z.record(z.string(), networkSchema.nullable()).optional(),
    volumes: z.record(z.string(), volumeSchema.nullable()).optional(),
  })
  .strict();

export type RawComposeFile = z.infer<typeof composeFileSchema>;
export type RawService = z.infer<typeof serviceSchema>;
export type RawNetwork = z.infer<typeof networkSchema>;
export type RawVolume = z.infer<typeof volumeSchema>;
