import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderTemplate } from './template.ts';
import { generateSynapseSigningKey } from './stack-secrets.ts';
import { parseStackValues, templateContext, type StackValuesInput } from './stack-values.ts';
import { ensureDirectory, writeFileAtomic, type FileOwner } from '../../shared/files/durable-files.ts';
import { fileIsCurrent } from './write-config-file.ts';

/** Users inside the images that must read their config files (mode 0600). */
export const SYNAPSE_USER: FileOwner = { uid: 991, gid: 991 };
export const REDIS_USER: FileOwner = { uid: 999, gid: 1000 };

export interface StackFileSpec {
  /** Under compose/templates/ (rendered) or compose/ (copied as is). */
  source: { template: string } | { static: string };
  /** Relative to the config dir. */
  output: string;
  mode: number;
  owner?: FileOwner;
  /** Holds a secret: mode must be 0600 (checked by the tests). */
  secret: boolean;
  /** Services to restart when the file changes. */
  consumers: string[];
}

/**
 * Every file the stack's containers read from ${MEMU_CONFIG_DIR}. compose/stack.yml
 * bind-mounts exactly these paths; the tests hold the two lists together.
 */
export const STACK_FILES: readonly StackFileSpec[] = [
  { source: { template: 'env/stack.env.tmpl' }, output: 'stack.env', mode: 0o644, secret: false, consumers: [] },
  { source: { template: 'nginx/site.conf.tmpl' }, output: 'nginx/site.conf', mode: 0o644, secret: false, consumers: ['memu_proxy'] },
  {
    source: { template: 'synapse/homeserver.yaml.tmpl' },
    output: 'synapse/homeserver.yaml',
    mode: 0o600,
    owner: SYNAPSE_USER,
    secret: true,
    consumers: ['synapse'],
  },
  { source: { template: 'element/config.json.tmpl' }, output: 'element/config.json', mode: 0o644, secret: false, consumers: ['element'] },
  {
    source: { template: 'postgres/postgresql.override.conf.tmpl' },
    output: 'postgres/postgresql.override.conf',
    mode: 0o644,
    secret: false,
    consumers: ['memu_postgres'],
  },
  {
    source: { static: 'postgres/init-databases.sh' },
    output: 'postgres/init-databases.sh',
    mode: 0o755,
    secret: false,
    consumers: ['memu_postgres_init'],
  },
  {
    source: { template: 'redis/redis.conf.tmpl' },
    output: 'redis/redis.conf',
    mode: 0o600,
    owner: REDIS_USER,
    secret: true,
    consumers: ['memu_redis'],
  },
  {
    source: { template: 'env/postgres.env.tmpl' },
    output: 'env/postgres.env',
    mode: 0o600,
    secret: true,
    consumers: ['memu_postgres', 'memu_postgres_init'],
  },
  { source: { template: 'env/immich.env.tmpl' }, output: 'env/immich.env', mode: 0o600, secret: true, consumers: ['immich_server'] },
  { source: { template: 'env/redis.env.tmpl' }, output: 'env/redis.env', mode: 0o600, secret: true, consumers: ['memu_redis'] },
];

export interface RenderedFile {
  path: string;
  mode: number;
  secret: boolean;
  /** False when the file already had exactly this content, mode and owner. */
  changed: boolean;
  consumers: string[];
}

export interface RenderOptions {
  /** The compose directory holding templates/ and postgres/; default: see defaultComposeDir(). */
  composeDir?: string;
  /** Crash-test hook: `media-store-created`, between creating synapse/media_store and setting its owner. */
  checkpoint?: (point: 'media-store-created') => Promise<void>;
}

/**
 * Where compose/ is: $MEMU_COMPOSE_DIR when set (the device installs the compose set
 * next to the agent bundle), else this repository's compose/.
 */
export function defaultComposeDir(): string {
  return process.env.MEMU_COMPOSE_DIR ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../compose');
}

/**
 * Renders every stack config file from the device's values into `outDir` (the
 * ${MEMU_CONFIG_DIR}), atomically, secrets 0600 owned by the container user that reads
 * them. Also prepares the data directories whose owner matters and creates Synapse's
 * signing key once (never replaced). Re-running with the same values changes nothing
 * and reports `changed: false`.
 *
 * Everything is rendered in memory first: a template error (which names the missing
 * value and the template) leaves every existing file untouched.
 */
export async function renderStackConfig(input: StackValuesInput, outDir: string, options: RenderOptions = {}): Promise<RenderedFile[]> {
  const values = parseStackValues(input);
  const context = templateContext(values);
  const composeDir = options.composeDir ?? defaultComposeDir();

  const rendered: Array<{ spec: StackFileSpec; content: string }> = [];
  for (const spec of STACK_FILES) {
    if ('template' in spec.source) {
      const name = `templates/${spec.source.template}`;
      const text = await readFile(join(composeDir, name), 'utf8');
      rendered.push({ spec, content: renderTemplate(name, text, context) });
    } else {
      rendered.push({ spec, content: await readFile(join(composeDir, spec.source.static), 'utf8') });
    }
  }

  await mkdir(outDir, { recursive: true, mode: 0o755 });
  const results: RenderedFile[] = [];
  for (const { spec, content } of rendered) {
    const path = join(outDir, spec.output);
    await mkdir(dirname(path), { recursive: true, mode: spec.secret ? 0o700 : 0o755 });
    const changed = !(await fileIsCurrent(path, content, spec.mode, spec.owner));
    if (changed) await writeFileAtomic(path, content, { mode: spec.mode, owner: spec.owner });
    results.push({ path, mode: spec.mode, secret: spec.secret, changed, consumers: spec.consumers });
  }

  // Directories a container needs writable as its own user (dockerd would create missing
  // bind sources as root-owned, which Synapse, running as 991, cannot write).
  const dataDir = values.paths.dataDir;
  await ensureDirectory(join(dataDir, 'synapse'), 0o750, SYNAPSE_USER);
  await ensureDirectory(join(dataDir, 'synapse', 'keys'), 0o700, SYNAPSE_USER);
  await ensureDirectory(join(dataDir, 'synapse', 'media_store'), 0o750, SYNAPSE_USER, () => options.checkpoint?.('media-store-created'));
  for (const dir of ['postgres', 'redis', 'tailscale', 'photos', 'immich-ml-cache', 'ollama']) {
    await ensureDirectory(join(dataDir, dir), 0o700);
  }
  const keyPath = join(dataDir, 'synapse', 'keys', 'signing.key');
  const keyCreated = await createOnce(keyPath, generateSynapseSigningKey(), 0o600, SYNAPSE_USER);
  results.push({ path: keyPath, mode: 0o600, secret: true, changed: keyCreated, consumers: ['synapse'] });
  return results;
}

/** Writes a key file only if there is none; returns whether it created one. */
function createOnce(path: string, content: string, mode: number, owner: FileOwner): Promise<boolean> {
  return writeFileAtomic(path, content, { mode, owner, noReplace: true });
}
