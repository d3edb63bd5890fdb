import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { TemplateContext } from './template.ts';
import { describeInvalid } from '../../shared/errors.ts';

/**
 * The per-device values the stack's config files are rendered from. Validation is
 * strict on purpose: these strings end up inside nginx, YAML, JSON and env files, so a
 * value that could break out of its quoting is refused here rather than escaped there.
 */

/** One DNS label: what MagicDNS and the LAN call the device (`memu-hub`). */
const dnsLabel = z
  .string()
  .regex(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label: lowercase letters, digits and inner hyphens, at most 63');
/** A DNS name (`memu-hub` or `memu-hub.tail1234.ts.net`). */
const dnsName = z
  .string()
  .max(253)
  .regex(
    /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/,
    'must be a lowercase DNS name such as memu-hub or memu-hub.example.ts.net',
  );
/** `host:port` for an upstream; host is a DNS name or an IPv4 address. */
const hostPort = z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, 'must be host:port');
const port = z.number().int().min(1).max(65535);
/** Secrets are generated on the device as URL-safe text, so no file format needs escaping. */
const secret = z
  .string()
  .min(32, 'must be at least 32 characters')
  .regex(/^[A-Za-z0-9_-]+$/, 'must be URL-safe base64 text (A-Z a-z 0-9 _ -)');
const absolutePath = z
  .string()
  .refine((p) => isAbsolute(p), 'must be an absolute path')
  .refine((p) => !/[\s'"$\\]/.test(p), 'must not contain spaces, quotes, $ or backslashes');

export const stackSecretsSchema = z
  .object({
    postgresPassword: secret,
    synapseDbPassword: secret,
    immichDbPassword: secret,
    redisPassword: secret,
    synapseRegistrationSharedSecret: secret,
    synapseMacaroonSecretKey: secret,
    synapseFormSecret: secret,
  })
  .strict();
export type StackSecrets = z.infer<typeof stackSecretsSchema>;

export const stackValuesSchema = z
  .object({
    device: z
      .object({
        /** Shown to the family ("The Smiths' Memu"); not used in any file format. */
        name: z.string().min(1).max(100),
        /** The device's host name on the LAN and in MagicDNS. */
        hostname: dnsLabel,
        timezone: z
          .string()
          .regex(/^[A-Za-z0-9_+\-/]+$/, 'must be an IANA time zone such as Europe/London')
          .default('Etc/UTC'),
      })
      .strict(),
    matrix: z
      .object({
        /** Permanent: part of every user ID. Defaults to the device's hostname. */
        serverName: dnsName.optional(),
        /** Where clients reach this homeserver. Defaults to http://<hostname>. */
        publicBaseUrl: z
          .string()
          .url()
          .refine((u) => /^https?:\/\/[A-Za-z0-9.:-]+\/?$/.test(u), 'must be http(s)://host[:port] with no path')
          .optional(),
        /** Federation with other Matrix servers; off unless the family turns it on. */
        federation: z.boolean().default(false),
        /** `/.well-known/matrix/server` answer. Defaults to <serverName>:443. */
        federationEndpoint: hostPort.optional(),
      })
      .strict()
      .default({}),
    paths: z
      .object({
        dataDir: absolutePath.default('/var/lib/memu'),
        /** Defaults to <dataDir>/config. */
        configDir: absolutePath.optional(),
      })
      .strict()
      .default({}),
    ports: z
      .object({
        http: port.default(80),
        photos: port.default(2283),
        agent: port.default(8080),
      })
      .strict()
      .default({}),
    /** Where the front door sends traffic. The defaults are the stack's own names. */
    frontDoor: z
      .object({
        /** nginx `listen` inside the container. */
        listen: z.string().regex(/^(?:[0-9.]+:)?\d{1,5}$/, 'must be a port or ipv4:port').default('80'),
        resolver: z.string().regex(/^[0-9.]+$/, 'must be an IPv4 address').default('127.0.0.11'),
        synapse: hostPort.default('synapse:8008'),
        element: hostPort.default('element:80'),
        /** Defaults to host.docker.internal:<ports.agent>. */
        agent: hostPort.optional(),
      })
      .strict()
      .default({}),
    /** Total RAM the Postgres cluster may assume for its cache sizing. */
    postgres: z
      .object({
        sharedBuffers: z.string().regex(/^\d+(?:kB|MB|GB)$/).default('128MB'),
        effectiveCacheSize: z.string().regex(/^\d+(?:kB|MB|GB)$/).default('384MB'),
      })
      .strict()
      .default({}),
    secrets: stackSecretsSchema,
  })
  .strict();

export type StackValuesInput = z.input<typeof stackValuesSchema>;
export type StackValues = z.output<typeof stackValuesSchema>;

/** Validates raw values; the error lists every bad field by its path. */
export function parseStackValues(input: unknown): StackValues {
  const result = stackValuesSchema.safeParse(input);
  if (!result.success) throw new Error(describeInvalid('the stack values', result.error.issues));
  return result.data;
}

/** The values every template may reference, with every derived decision made here. */
export function templateContext(values: StackValues): TemplateContext {
  const hostname = values.device.hostname;
  const serverName = values.matrix.serverName ?? hostname;
  const publicBaseUrl = (values.matrix.publicBaseUrl ?? `http://${hostname}`).replace(/\/$/, '');
  const dataDir = values.paths.dataDir;
  const configDir = values.paths.configDir ?? join(dataDir, 'config');
  const federation = values.matrix.federation;

  const serverJson = JSON.stringify({ 'm.server': values.matrix.federationEndpoint ?? `${serverName}:443` });
  const clientJson = JSON.stringify({ 'm.homeserver': { base_url: publicBaseUrl } });
  for (const [name, json] of [
    ['server', serverJson],
    ['client', clientJson],
  ] as const) {
    // Placed inside an nginx '...' string: none of these may appear (validation above
    // already rules them out; this guards against a future schema change).
    if (/['\\$;]/.test(json)) {
      throw new Error(`well-known ${name} answer ${json} contains characters nginx would interpret`);
    }
  }

  return {
    device: { name: values.device.name, hostname, timezone: values.device.timezone },
    matrix: { serverName, publicBaseUrl, federation },
    paths: { dataDir, configDir },
    nginx: { listen: values.frontDoor.listen, resolver: values.frontDoor.resolver, httpPort: values.ports.http },
    upstreams: {
      synapse: values.frontDoor.synapse,
      element: values.frontDoor.element,
      agent: values.frontDoor.agent ?? `host.docker.internal:${values.ports.agent}`,
    },
    photos: { port: values.ports.photos },
    agent: { port: values.ports.agent },
    wellKnown: { serverJson, clientJson },
    synapse: {
      listenerResources: JSON.stringify(federation ? ['client', 'federation'] : ['client']),
      // Empty list: no remote server allowed. null: Synapse's default, everyone.
      federationDomainWhitelist: federation ? 'null' : '[]',
      trustedKeyServers: federation ? JSON.stringify([{ server_name: 'matrix.org' }]) : '[]',
    },
    postgres: { sharedBuffers: values.postgres.sharedBuffers, effectiveCacheSize: values.postgres.effectiveCacheSize },
    secrets: { ...values.secrets },
  };
}
