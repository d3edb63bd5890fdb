import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { splitCommandLine } from '../../../../shared/compose/command-line.ts';
import { composeStackFromSources, parseEnvFile } from '../../../../shared/compose/load.ts';
import { parseByteSize, parseDurationNs, parseNanoCpus } from '../../../../shared/compose/units.ts';
import { containerBlueprint } from '../../../../agent/stack/container-spec.ts';
import { ComposeError } from '../../../../shared/compose/errors.ts';
import { interpolateString } from '../../../../shared/compose/interpolate.ts';
import { REPO_ROOT } from '../../../helpers/memu-build.ts';

const DIR = '/srv/memu';

async function load(files: Record<string, string>, variables: Record<string, string> = {}, envFiles: Record<string, string> = {}) {
  return composeStackFromSources(
    Object.entries(files).map(([file, text]) => ({ file: `${DIR}/${file}`, text })),
    { variables, projectName: 'memu', readTextFile: async (p) => envFiles[p] },
  );
}

async function loadError(files: Record<string, string>, variables: Record<string, string> = {}): Promise<ComposeError> {
  const error = await load(files, variables).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ComposeError);
  return error as ComposeError;
}

describe('interpolation', () => {
  const vars = { NAME: 'memu', EMPTY: '' };
  it.each([
    ['${NAME}', 'memu'],
    ['$NAME-x', 'memu-x'],
    ['${MISSING:-fallback}', 'fallback'],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${EMPTY-fallback}', ''],
    ['${MISSING-fallback}', 'fallback'],
    ['${MISSING:-${NAME}}', 'memu'],
    ['${NAME:+set}', 'set'],
    ['cost $$5', 'cost $5'],
  ])('%s -> %s', (input, expected) => {
    expect(interpolateString(input, vars)).toBe(expected);
  });

  it('refuses an undefined variable without a default, naming it', () => {
    expect(() => interpolateString('${DB_PASSWORD}', vars)).toThrow(/DB_PASSWORD is not set/);
    expect(() => interpolateString('${DB_PASSWORD:?set it in the preseed}', vars)).toThrow(/set it in the preseed/);
  });

  it('names file, service and key when a compose value uses an undefined variable', async () => {
    const error = await loadError({ 'compose.yaml': 'services:\n  db:\n    image: pg\n    environment:\n      PW: ${DB_PASSWORD}\n' });
    expect(error.message).toContain('/srv/memu/compose.yaml');
    expect(error.message).toContain('service "db"');
    expect(error.message).toContain('environment.PW');
    expect(error.message).toContain('DB_PASSWORD');
  });
});

describe('supported subset', () => {
  it('refuses an unsupported service key, naming file, service and key', async () => {
    const error = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    privileged: true\n' });
    expect(error.message).toMatch(/compose\.yaml: service "app": key "privileged" is not supported/);
    expect(error.location).toEqual({ file: '/srv/memu/compose.yaml', service: 'app', key: 'privileged' });
  });

  it('refuses unsupported nested and top-level keys', async () => {
    const nested = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    healthcheck:\n      test: "true"\n      start_interval: 1s\n' });
    expect(nested.message).toContain('/srv/memu/compose.yaml is invalid: services.app.healthcheck.start_interval: not a known field');
    expect(nested.location).toEqual({ file: '/srv/memu/compose.yaml', service: 'app', key: 'healthcheck.start_interval' });
    expect(nested.hint).toMatch(/COMPOSE-SUBSET\.md/);
    const top = await loadError({ 'compose.yaml': 'services: {}\nconfigs:\n  x: {}\n' });
    expect(top.message).toContain('top-level key "configs" is not supported');
    const anonymous = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    volumes: ["/data"]\n' });
    expect(anonymous.message).toContain('anonymous volumes are not supported');
    const wrongType = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    read_only: "yes"\n    init: 1\n' });
    // Every schema problem of the file, in the shared wording.
    expect(wrongType.message).toBe(
      '/srv/memu/compose.yaml is invalid:\n  - services.app.read_only: Expected boolean, received string\n  - services.app.init: Expected boolean, received number',
    );
    expect(wrongType.location).toEqual({ file: '/srv/memu/compose.yaml', service: 'app', key: 'read_only' });
  });

  it.each([
    ['profiles', '    profiles: [debug]\n'],
    ['extends', '    extends: {file: base.yml, service: web}\n'],
    ['deploy', '    deploy: {resources: {limits: {memory: 64m}}}\n'],
    ['build', '    build: .\n'],
  ])('refuses the service key %s, which the device does not run', async (key, yaml) => {
    const error = await loadError({ 'compose.yaml': `services:\n  app:\n    image: a\n${yaml}` });
    expect(error.message).toContain(`service "app": key "${key}" is not supported`);
    expect(error.location).toEqual({ file: '/srv/memu/compose.yaml', service: 'app', key });
  });

  it('refuses an anonymous volume in either syntax', async () => {
    const short = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    volumes: ["/data"]\n' });
    expect(short.message).toContain('anonymous volumes are not supported');
    const long = await loadError({ 'compose.yaml': 'services:\n  app:\n    image: a\n    volumes: [{type: volume, target: /data}]\n' });
    expect(long.location).toMatchObject({ service: 'app', key: 'volumes[0]' });
  });

  it('takes an image given through a YAML merge key', async () => {
    const stack = await load({ 'compose.yaml': 'x-base: &base\n  image: registry.test/app:1\nservices:\n  app:\n    <<: *base\n' });
    expect(stack.services.app!.image).toBe('registry.test/app:1');
  });

  it('refuses an empty file and a stack without services', async () => {
    const empty = await loadError({ 'stack.yml': '# nothing yet\n' });
    expect(empty.message).toMatch(/^\/srv\/memu\/stack\.yml: is empty/);
    const emptyOverride = await loadError({ 'stack.yml': 'services:\n  app:\n    image: a\n', 'hailo.yml': '' });
    expect(emptyOverride.message).toMatch(/^\/srv\/memu\/hailo\.yml: is empty/);
    const none = await loadError({ 'stack.yml': 'services: {}\n' });
    expect(none.message).toMatch(/^\/srv\/memu\/stack\.yml: defines no services/);
    // An override that changes nothing says so explicitly, and is fine.
    expect(Object.keys((await load({ 'stack.yml': 'services:\n  app:\n    image: a\n', 'hailo.yml': 'services: {}\n' })).services)).toEqual(['app']);
  });

  it('refuses two services whose names differ only in case, in one file or across files', async () => {
    const one = await loadError({ 'stack.yml': 'services:\n  web:\n    image: a\n  Web:\n    image: b\n' });
    expect(one.message).toContain('services "web" (/srv/memu/stack.yml) and "Web" (/srv/memu/stack.yml) differ only in letter case');
    const two = await loadError({ 'stack.yml': 'services:\n  web:\n    image: a\n', 'hailo.yml': 'services:\n  WEB:\n    image: b\n' });
    expect(two.message).toContain('services "web" (/srv/memu/stack.yml) and "WEB" (/srv/memu/hailo.yml) differ only in letter case');
    expect(two.location).toEqual({ file: '/srv/memu/hailo.yml', service: 'WEB' });
  });

  it('ignores x- extension keys and the obsolete version key, like the compose CLI', async () => {
    const stack = await load({
      'compose.yaml': [
        'version: "3.8"',
        'x-common: &common',
        '  restart: unless-stopped',
        'services:',
        '  app:',
        '    <<: *common',
        '    image: a',
        '    x-note: hello',
      ].join('\n'),
    });
    expect(stack.services.app!.restart).toEqual({ mode: 'unless-stopped' });
  });

  it('normalises the short and long forms of every supported key', async () => {
    const stack = await load(
      {
        'compose.yaml': `
name: family
services:
  app:
    image: registry.example/app:1
    command: sh -c "echo 'hi there'"
    entrypoint: ["/init", 1]
    environment: ["A=1", "PASSED", "DROPPED"]
    env_file: [app.env]
    ports: ["8080:80", "127.0.0.1:9000-9001:9000-9001/udp", 3000, {target: 443, published: "8443", host_ip: 0.0.0.0, mode: ingress}]
    volumes: ["data:/var/lib/app", "./config:/etc/app:ro", {type: bind, source: /dev/shm, target: /shm}]
    networks: {front: {aliases: [www]}, back: null}
    depends_on:
      db: {condition: service_healthy, required: true}
      ghost: {condition: service_started, required: false}
    healthcheck: {test: "wget -q -O- localhost", interval: 1m30s, timeout: 500ms, retries: 3, start_period: 10s}
    restart: on-failure:5
    labels: [team=family]
    devices: ["/dev/hailo0", "/dev/dri/renderD128:/dev/dri/renderD128:rw"]
    cap_add: [NET_ADMIN]
    user: 1000
    logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
    mem_limit: 512m
    cpus: "1.5"
    working_dir: /app
    read_only: true
    tmpfs: ["/run:size=64m", /tmp]
    extra_hosts: ["host.docker.internal:host-gateway", "v6=::1"]
    stop_grace_period: 1m
  db:
    image: postgres:16
    network_mode: host
    healthcheck: {test: ["CMD", "pg_isready"]}
networks: {front: {}, back: {internal: true}}
volumes: {data: {}}
`,
      },
      { PASSED: 'from-vars' },
      { '/srv/memu/app.env': '# comment\nA=from-file\nB="quoted ${PASSED}"\nexport C=\'lit $x\'\n' },
    );
    expect(stack.project).toBe('memu');
    const app = stack.services.app!;
    expect(app.command).toEqual(['sh', '-c', "echo 'hi there'"]);
    expect(app.entrypoint).toEqual(['/init', '1']);
    expect(app.environment).toEqual({ A: '1', B: 'quoted from-vars', C: 'lit $x', PASSED: 'from-vars' });
    expect(app.ports).toEqual([
      { containerPort: 80, protocol: 'tcp', hostPort: '8080' },
      { containerPort: 9000, protocol: 'udp', hostIp: '127.0.0.1', hostPort: '9000' },
      { containerPort: 9001, protocol: 'udp', hostIp: '127.0.0.1', hostPort: '9001' },
      { containerPort: 3000, protocol: 'tcp' },
      { containerPort: 443, protocol: 'tcp', hostIp: '0.0.0.0', hostPort: '8443' },
    ]);
    expect(app.mounts).toEqual([
      { type: 'volume', source: 'data', target: '/var/lib/app', readOnly: false },
      { type: 'bind', source: '/srv/memu/config', target: '/etc/app', readOnly: true },
      { type: 'bind', source: '/dev/shm', target: '/shm', readOnly: false },
    ]);
    expect(app.networks).toEqual({ front: { aliases: ['www'] }, back: { aliases: [] } });
    expect(app.dependsOn).toEqual({ db: { condition: 'service_healthy' } });
    expect(app.healthcheck).toEqual({
      disabled: false,
      test: ['CMD-SHELL', 'wget -q -O- localhost'],
      intervalNs: 90e9,
      timeoutNs: 500e6,
      retries: 3,
      startPeriodNs: 10e9,
    });
    expect(app.restart).toEqual({ mode: 'on-failure', maxRetries: 5 });
    expect(app.labels).toEqual({ team: 'family' });
    expect(app.devices).toEqual([
      { pathOnHost: '/dev/hailo0', pathInContainer: '/dev/hailo0', permissions: 'rwm' },
      { pathOnHost: '/dev/dri/renderD128', pathInContainer: '/dev/dri/renderD128', permissions: 'rw' },
    ]);
    expect(app).toMatchObject({
      capAdd: ['NET_ADMIN'],
      user: '1000',
      logging: { driver: 'json-file', options: { 'max-size': '10m', 'max-file': '3' } },
      memLimitBytes: 512 * 1024 ** 2,
      nanoCpus: 1.5e9,
      workingDir: '/app',
      readOnly: true,
      tmpfs: { '/run': 'size=64m', '/tmp': '' },
      extraHosts: ['host.docker.internal:host-gateway', 'v6:::1'],
      stopGracePeriodS: 60,
    });
    expect(stack.services.db).toMatchObject({ networkMode: 'host', networks: {}, restart: { mode: 'no' } });
    expect(stack.networks.back).toMatchObject({ dockerName: 'memu_back', internal: true });
    expect(stack.volumes.data!.dockerName).toBe('memu_data');
    expect(stack.networks.default).toBeUndefined();
  });

  it('checks cross-references: volumes, networks, dependencies and health conditions', async () => {
    const base = 'services:\n  app:\n    image: a\n';
    expect((await loadError({ 'c.yaml': `${base}    volumes: ["data:/d"]\n` })).message).toContain('volume "data", which is not declared');
    expect((await loadError({ 'c.yaml': `${base}    networks: [front]\n` })).message).toContain('network "front", which is not declared');
    expect((await loadError({ 'c.yaml': `${base}    depends_on: [db]\n` })).message).toContain('depends on undefined service "db"');
    const noHealth = await loadError({
      'c.yaml': `${base}    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: b\n`,
    });
    expect(noHealth.message).toContain('"db" has no healthcheck');
    const cycle = await loadError({ 'c.yaml': `${base}    depends_on: [db]\n  db:\n    image: b\n    depends_on: [app]\n` });
    expect(cycle.message).toContain('cycle');
    expect((await loadError({ 'c.yaml': 'services:\n  app:\n    command: x\n' })).message).toContain('service "app" has no image');
    const host = await loadError({ 'c.yaml': `${base}    network_mode: host\n    ports: ["80:80"]\n` });
    expect(host.message).toContain('network_mode: host');
  });
});

describe('merging files in order', () => {
  it('overrides scalars, merges maps, appends ports and merges volumes by target', async () => {
    const stack = await load({
      'compose.yaml': `
services:
  app:
    image: app:1
    command: ["serve"]
    environment: {A: "1", B: "1"}
    labels: {x: "1"}
    ports: ["8080:80"]
    volumes: ["data:/data", "./a:/a"]
    devices: ["/dev/a"]
    cap_add: [NET_ADMIN]
    healthcheck: {test: "true", interval: 10s}
    logging: {driver: json-file, options: {max-size: 10m}}
volumes: {data: {}}
`,
      'compose.override.yaml': `
services:
  app:
    image: app:2
    command: ["serve", "--debug"]
    environment: ["B=2", "C=3"]
    labels: {y: "2"}
    ports: ["8080:80", "9090:90"]
    volumes: ["./b:/a:ro"]
    devices: ["/dev/b"]
    cap_add: [NET_ADMIN, SYS_TIME]
    healthcheck: {interval: 5s}
    logging: {options: {max-file: "2"}}
  extra:
    image: extra:1
`,
    });
    const app = stack.services.app!;
    expect(app.image).toBe('app:2');
    expect(app.command).toEqual(['serve', '--debug']);
    expect(app.environment).toEqual({ A: '1', B: '2', C: '3' });
    expect(app.labels).toEqual({ x: '1', y: '2' });
    expect(app.ports.map((p) => `${p.hostPort}:${p.containerPort}`)).toEqual(['8080:80', '9090:90']);
    expect(app.mounts.map((m) => `${m.source}:${m.target}:${m.readOnly}`)).toEqual(['data:/data:false', '/srv/memu/b:/a:true']);
    expect(app.devices.map((d) => d.pathOnHost)).toEqual(['/dev/a', '/dev/b']);
    expect(app.capAdd).toEqual(['NET_ADMIN', 'SYS_TIME']);
    expect(app.healthcheck).toMatchObject({ test: ['CMD-SHELL', 'true'], intervalNs: 5e9 });
    expect(app.logging).toEqual({ driver: 'json-file', options: { 'max-size': '10m', 'max-file': '2' } });
    expect(Object.keys(stack.services).sort()).toEqual(['app', 'extra']);
  });
});

describe('value formats', () => {
  it('parses durations, sizes, CPU counts, command lines and env files', () => {
    expect(parseDurationNs('1m30s')).toBe(90e9);
    expect(parseDurationNs('1h')).toBe(3600e9);
    expect(() => parseDurationNs('10')).toThrow(/duration/);
    expect(parseByteSize('1g')).toBe(1024 ** 3);
    expect(parseByteSize('64mb')).toBe(64 * 1024 ** 2);
    expect(parseByteSize(1000)).toBe(1000);
    expect(() => parseByteSize('lots')).toThrow();
    expect(parseNanoCpus('0.5')).toBe(5e8);
    expect(splitCommandLine(`sh -c "a \\"b\\" c" 'd e' f\\ g`)).toEqual(['sh', '-c', 'a "b" c', 'd e', 'f g']);
    expect(() => splitCommandLine('echo "open')).toThrow(/unterminated/);
    expect(parseEnvFile('A=1 # note\nB=${A}2\n', {})).toEqual({ A: '1', B: '12' });
    expect(() => parseEnvFile('not a line\n', {})).toThrow(/line 1/);
  });
});

describe('container blueprint', () => {
  it('hashes the effective configuration: key order does not matter, a value does', async () => {
    const a = await load({ 'c.yaml': 'services:\n  app:\n    image: a\n    environment: {X: "1", Y: "2"}\n    ports: ["18200:80"]\n' });
    const b = await load({ 'c.yaml': 'services:\n  app:\n    environment: {Y: "2", X: "1"}\n    ports: ["18200:80"]\n    image: a\n' });
    const c = await load({ 'c.yaml': 'services:\n  app:\n    image: a\n    environment: {X: "1", Y: "3"}\n    ports: ["18200:80"]\n' });
    const pinned = `a@sha256:${'1'.repeat(64)}`;
    const hash = (s: typeof a) => containerBlueprint(s, s.services.app!, pinned).configHash;
    expect(hash(a)).toBe(hash(b));
    expect(hash(a)).not.toBe(hash(c));
    expect(containerBlueprint(a, a.services.app!, `a@sha256:${'2'.repeat(64)}`).configHash).not.toBe(hash(a));
    const blueprint = containerBlueprint(a, a.services.app!, pinned);
    expect(blueprint.create.name).toBe('memu-app-1');
    expect(blueprint.create.Image).toBe(pinned);
    expect(blueprint.create.Labels).toMatchObject({ 'org.memu.stack': 'memu', 'org.memu.service': 'app' });
    expect(blueprint.create.HostConfig).toMatchObject({
      PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '18200' }] },
      RestartPolicy: { Name: 'no' },
      NetworkMode: 'memu_default',
    });
    expect(blueprint.create.NetworkingConfig?.EndpointsConfig?.memu_default?.Aliases).toEqual(['app']);
  });
});

describe('the product stack (compose/)', () => {
  it('loads compose/stack.yml with the NPU override inside the supported subset', async () => {
    const { readFile } = await import('node:fs/promises');
    const root = join(REPO_ROOT, 'compose/');
    const sources = await Promise.all(
      ['stack.yml', 'hailo.yml'].map(async (name) => ({ file: `${root}${name}`, text: await readFile(`${root}${name}`, 'utf8') })),
    );
    // env files are rendered on the device; an empty one stands in here.
    const stack = await composeStackFromSources(sources, { variables: {}, readTextFile: async () => '' });
    expect(stack.project).toBe('memu');
    expect(Object.keys(stack.services).length).toBeGreaterThan(0);
    for (const service of Object.values(stack.services)) expect(service.image).toMatch(/:/);
  });
});
