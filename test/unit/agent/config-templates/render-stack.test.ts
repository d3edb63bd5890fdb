import { mkdtemp, readFile, rm, stat, writeFile, mkdir, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { renderStackConfig, STACK_FILES } from '../../../../agent/config-templates/render-stack.ts';
import { generateStackSecrets } from '../../../../agent/config-templates/stack-secrets.ts';
import { parseStackValues, type StackValuesInput } from '../../../../agent/config-templates/stack-values.ts';
import { renderTemplate, TemplateError } from '../../../../agent/config-templates/template.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';

const COMPOSE_DIR = resolve(REPO_ROOT, 'compose');

describe('renderTemplate', () => {
  it('substitutes values and JSON-encodes with | json', () => {
    const out = renderTemplate('t', 'a={{ x.y }} b={{x.z|json}}', { x: { y: 'plain', z: 'say "hi"' } });
    expect(out).toBe('a=plain b="say \\"hi\\""');
  });

  it('fails on a missing value, naming every missing value and the template', () => {
    const attempt = () => renderTemplate('synapse/homeserver.yaml.tmpl', 'a: {{ matrix.serverName }}\nb: {{ secrets.nope }}', { matrix: {} });
    expect(attempt).toThrow(TemplateError);
    expect(attempt).toThrow(/template synapse\/homeserver\.yaml\.tmpl references unknown values "matrix\.serverName", "secrets\.nope"/);
  });

  it('never renders an empty string for a missing value', () => {
    try {
      renderTemplate('t', 'x={{ missing }}', {});
      expect.unreachable();
    } catch (err) {
      expect((err as TemplateError).missing).toEqual(['missing']);
    }
  });

  it('rejects unknown filters, groups used as values and malformed placeholders', () => {
    expect(() => renderTemplate('t', '{{ a | yaml }}', { a: '1' })).toThrow(/unknown filter "yaml"/);
    expect(() => renderTemplate('t', '{{ a }}', { a: { b: '1' } })).toThrow(/"a" is a group of values/);
    expect(() => renderTemplate('t', '{{ a b }}', { a: '1' })).toThrow(/malformed placeholder/);
  });
});

describe('stack values', () => {
  const base = (): StackValuesInput => ({ device: { name: 'Smiths', hostname: 'memu-hub' }, secrets: generateStackSecrets() });

  it('refuses values that could break out of a config file, naming the field', () => {
    expect(() => parseStackValues({ ...base(), device: { name: 'x', hostname: 'memu hub; rm' } })).toThrow(/device\.hostname/);
    expect(() => parseStackValues({ ...base(), matrix: { serverName: "a'b" } })).toThrow(/matrix\.serverName/);
    expect(() => parseStackValues({ ...base(), secrets: { ...generateStackSecrets(), redisPassword: 'short' } })).toThrow(/secrets\.redisPassword/);
    expect(() => parseStackValues({ ...base(), secrets: { ...generateStackSecrets(), redisPassword: 'x'.repeat(40) + '\nrequirepass' } })).toThrow(
      /secrets\.redisPassword/,
    );
  });

  it('generates distinct URL-safe secrets', () => {
    const a = generateStackSecrets();
    const b = generateStackSecrets();
    expect(new Set([...Object.values(a), ...Object.values(b)]).size).toBe(14);
    for (const v of Object.values(a)) expect(v).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('renderStackConfig', () => {
  let dir: string;
  const values = (over: Partial<StackValuesInput> = {}): StackValuesInput => ({
    device: { name: 'The Smiths', hostname: 'memu-hub' },
    paths: { dataDir: join(dir, 'data') },
    secrets: secrets,
    ...over,
  });
  const secrets = generateStackSecrets();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-render-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every file with its mode; secret-bearing files are 0600', async () => {
    const out = join(dir, 'config');
    const files = await renderStackConfig(values(), out);
    for (const spec of STACK_FILES) {
      const info = await stat(join(out, spec.output));
      expect(info.mode & 0o777, spec.output).toBe(spec.mode);
      if (spec.secret) expect(spec.mode, spec.output).toBe(0o600);
    }
    for (const file of files) {
      const content = await readFile(file.path, 'utf8');
      const holdsSecret = Object.values(secrets).some((s) => content.includes(s));
      expect(holdsSecret ? file.mode : 0o600, `${file.path} holds a secret but is not 0600`).toBe(0o600);
    }
    expect(files.every((f) => f.changed)).toBe(true);
  });

  it('gives Synapse and Redis their files (owned by the container user when run as root)', async () => {
    const out = join(dir, 'config');
    await renderStackConfig(values(), out);
    if (process.getuid?.() !== 0) return;
    expect((await stat(join(out, 'synapse/homeserver.yaml'))).uid).toBe(991);
    expect((await stat(join(out, 'redis/redis.conf'))).uid).toBe(999);
    expect((await stat(join(dir, 'data/synapse/media_store'))).uid).toBe(991);
  });

  it("renders Synapse's config: server name, closed registration, secrets, federation off", async () => {
    const out = join(dir, 'config');
    await renderStackConfig(values(), out);
    const hs = parse(await readFile(join(out, 'synapse/homeserver.yaml'), 'utf8'));
    expect(hs.server_name).toBe('memu-hub');
    expect(hs.public_baseurl).toBe('http://memu-hub');
    expect(hs.enable_registration).toBe(false);
    expect(hs.registration_shared_secret).toBe(secrets.synapseRegistrationSharedSecret);
    expect(hs.signing_key_path).toBe('/data/keys/signing.key');
    expect(hs.database.args).toMatchObject({ host: 'memu_postgres', dbname: 'synapse', user: 'synapse', password: secrets.synapseDbPassword });
    expect(hs.redis).toMatchObject({ enabled: true, host: 'memu_redis', password: secrets.redisPassword });
    expect(hs.media_store_path).toBe('/data/media_store');
    expect(hs.federation_domain_whitelist).toEqual([]);
    expect(hs.trusted_key_servers).toEqual([]);
    expect(hs.listeners[0].resources[0].names).toEqual(['client']);
  });

  it('switches federation on with one value', async () => {
    const out = join(dir, 'config');
    await renderStackConfig(values({ matrix: { federation: true } }), out);
    const hs = parse(await readFile(join(out, 'synapse/homeserver.yaml'), 'utf8'));
    expect(hs.federation_domain_whitelist).toBeNull();
    expect(hs.listeners[0].resources[0].names).toEqual(['client', 'federation']);
    expect(hs.trusted_key_servers).toEqual([{ server_name: 'matrix.org' }]);
  });

  it("brands Element's config and points it at this homeserver", async () => {
    const out = join(dir, 'config');
    await renderStackConfig(values({ matrix: { serverName: 'memu-hub.example.ts.net', publicBaseUrl: 'https://memu-hub.example.ts.net' } }), out);
    const element = JSON.parse(await readFile(join(out, 'element/config.json'), 'utf8'));
    expect(element.brand).toBe('Memu Chat');
    expect(element.default_server_config['m.homeserver']).toEqual({
      base_url: 'https://memu-hub.example.ts.net',
      server_name: 'memu-hub.example.ts.net',
    });
  });

  it('changes nothing on a second render, and keeps the signing key', async () => {
    const out = join(dir, 'config');
    const first = await renderStackConfig(values(), out);
    const key = await readFile(join(dir, 'data/synapse/keys/signing.key'), 'utf8');
    expect(key).toMatch(/^ed25519 a_[A-Za-z]{4} [A-Za-z0-9+/]{43}\n$/);
    const second = await renderStackConfig(values(), out);
    expect(second.map((f) => f.changed)).toEqual(first.map(() => false));
    expect(await readFile(join(dir, 'data/synapse/keys/signing.key'), 'utf8')).toBe(key);
    const third = await renderStackConfig(values({ matrix: { federation: true } }), out);
    expect(third.filter((f) => f.changed).map((f) => f.consumers)).toEqual([['synapse']]);
  });

  it('fails with the missing value and template name, leaving existing files untouched', async () => {
    const out = join(dir, 'config');
    await renderStackConfig(values(), out);
    const before = await readFile(join(out, 'nginx/site.conf'), 'utf8');
    const composeDir = join(dir, 'compose');
    await cp(COMPOSE_DIR, composeDir, { recursive: true });
    await writeFile(join(composeDir, 'templates/nginx/site.conf.tmpl'), 'server_name {{ device.nickname }};\n');
    await mkdir(join(dir, 'unused'), { recursive: true });
    await expect(renderStackConfig(values(), out, { composeDir })).rejects.toThrow(
      /template templates\/nginx\/site\.conf\.tmpl references unknown value "device\.nickname"/,
    );
    expect(await readFile(join(out, 'nginx/site.conf'), 'utf8')).toBe(before);
  });
});
