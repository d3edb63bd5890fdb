import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { imageLockSchema } from '../../../shared/contracts/image-lock.ts';
import { STACK_FILES } from '../../../agent/config-templates/render-stack.ts';
import { checkStackAsDevice, findStackFiles } from '../../../image/stack/device-stack-check.ts';
import { REPO_ROOT } from '../../helpers/memu-build.ts';

/** Static checks of compose/: the contract with the reconciler, pinning, budgets. */
const COMPOSE_DIR = resolve(REPO_ROOT, 'compose');
const read = (f: string) => readFileSync(resolve(COMPOSE_DIR, f), 'utf8');

type Service = Record<string, unknown> & {
  image?: string;
  volumes?: string[];
  healthcheck?: { test?: unknown };
  logging?: { driver?: string; options?: Record<string, string> };
  labels?: Record<string, string>;
  mem_limit?: string;
  restart?: string;
  network_mode?: string;
};
const stack = parse(read('stack.yml')) as { name: string; services: Record<string, Service>; networks: Record<string, unknown> };
const hailo = parse(read('hailo.yml')) as { services: Record<string, Service> };
const services = Object.entries(stack.services);

function bytes(size: string): number {
  const m = /^(\d+)([kmg])$/.exec(size);
  if (!m) throw new Error(`unexpected mem_limit ${size}`);
  return Number(m[1]) * { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2] as 'k' | 'm' | 'g'];
}

describe('compose/stack.yml', () => {
  it('loads as the device loads it, with and without the NPU override', async () => {
    const images = await checkStackAsDevice(await findStackFiles(COMPOSE_DIR));
    expect(new Set(images.map((i) => i.service))).toEqual(new Set(Object.keys(stack.services)));
    for (const [name, service] of services) {
      if (service.environment) expect(Array.isArray(service.environment), `${name}: environment in map form`).toBe(false);
    }
  });

  it.each(services)('%s has a healthcheck, restart policy, mem_limit, capped logs and labels', (name, service) => {
    expect(service.healthcheck?.test).toBeDefined();
    expect(service.restart).toMatch(/^(unless-stopped|always|no)$/);
    expect(service.mem_limit).toMatch(/^\d+[kmg]$/);
    expect(service.logging?.driver).toBe('local');
    expect(service.logging?.options?.['max-size']).toMatch(/^\d+m$/);
    expect(service.logging?.options?.['max-file']).toMatch(/^\d+$/);
    expect(service.labels?.['org.memu.service']).toBe(name);
    expect(service.labels?.['org.memu.role']).toMatch(/^(infra|app|job)$/);
    // Only one-shot jobs may stay stopped.
    expect(service.restart === 'no').toBe(service.labels?.['org.memu.role'] === 'job');
  });

  it('gives no container the Docker socket', () => {
    for (const file of ['stack.yml', 'hailo.yml']) expect(read(file)).not.toMatch(/docker\.sock/);
    for (const [, service] of services) for (const v of service.volumes ?? []) expect(v).not.toMatch(/docker\.sock/);
  });

  it('names every image fully qualified, by tag, without variables', () => {
    for (const [name, service] of services) {
      expect(service.image, name).toMatch(/^(docker\.io|ghcr\.io)\/[a-z0-9._/-]+:[A-Za-z0-9._-]+$/);
    }
  });

  it('mounts only rendered files that the renderer writes, under ${MEMU_CONFIG_DIR}', () => {
    const rendered = new Set(STACK_FILES.map((f) => f.output));
    for (const [name, service] of services) {
      for (const volume of service.volumes ?? []) {
        // Fold the ${VAR:-default} forms so the short syntax splits on its own colons.
        const folded = volume
          .replace('${MEMU_CONFIG_DIR:-/var/lib/memu/config}', '$CONFIG')
          .replace('${MEMU_DATA_DIR:-/var/lib/memu}', '$DATA');
        const source = folded.split(':')[0]!;
        const m = /^\$CONFIG\/(.+)$/.exec(source);
        if (m) expect(rendered.has(m[1]!), `${name} mounts ${m[1]} which the renderer does not write`).toBe(true);
        else expect(source, `${name}: ${volume}`).toMatch(/^(\$DATA\/[a-z-]+$|\/var\/run\/tailscale$)/);
      }
      for (const envFile of (service.env_file as string[] | undefined) ?? []) {
        const m = /^\$\{MEMU_CONFIG_DIR:-\/var\/lib\/memu\/config\}\/(.+)$/.exec(envFile);
        expect(m && rendered.has(m[1]!), `${name}: env_file ${envFile}`).toBe(true);
        expect(STACK_FILES.find((f) => f.output === m![1])?.mode).toBe(0o600);
      }
    }
  });

  it('keeps the NPU override to services that exist and adds nothing that cannot use the NPU', () => {
    for (const name of Object.keys(hailo.services)) expect(Object.keys(stack.services)).toContain(name);
    expect(hailo.services.immich_ml?.devices).toBeUndefined();
    expect(hailo.services.ollama?.devices).toBeUndefined();
  });

  it('fits the memory table in compose/README.md, and the table fits an 8 GB Pi 5 with headroom', () => {
    const readme = read('README.md');
    const rows = new Map<string, string>();
    for (const m of readme.matchAll(/^\| `([a-z_]+)` \| (\d+[kmg]) \|/gm)) rows.set(m[1]!, m[2]!);
    for (const [name, service] of services) expect(rows.get(name), `README memory row for ${name}`).toBe(service.mem_limit);
    const longRunning = services.filter(([, s]) => s.restart !== 'no');
    const reservedForIntelligence = bytes(rows.get('intelligence') ?? '0m');
    const total = longRunning.reduce((sum, [, s]) => sum + bytes(s.mem_limit!), 0) + reservedForIntelligence;
    // A Pi 5 8 GB shows ~7.7 GiB to Linux; keep >= 1.25 GiB for the OS, dockerd and the agent.
    expect(total).toBeLessThanOrEqual(7.7 * 1024 ** 3 - 1.25 * 1024 ** 3);
    expect(readme).toContain(`${Math.round(total / 1024 ** 2)} MiB`);
  });
});

describe('compose/images.lock.json', () => {
  const lock = imageLockSchema.parse(JSON.parse(read('images.lock.json')));
  const images = new Set(services.map(([, s]) => s.image!));

  it('lists exactly the images the compose files name', () => {
    expect(new Set(Object.keys(lock.images))).toEqual(images);
  });

  it('holds only sha256 digests (an entry without platforms waits for `memu stack lock`)', () => {
    for (const [ref, entry] of Object.entries(lock.images)) {
      for (const digest of [entry.index, ...Object.values(entry.platforms)].filter(Boolean)) {
        expect(digest, ref).toMatch(/^sha256:[0-9a-f]{64}$/);
      }
    }
  });
});
