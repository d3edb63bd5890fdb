import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStackConfig } from '../../../agent/config-templates/render-stack.ts';
import { generateStackSecrets } from '../../../agent/config-templates/stack-secrets.ts';
import { REPO_ROOT } from '../../helpers/memu-build.ts';

const run = promisify(execFile);
const COMPOSE_DIR = resolve(REPO_ROOT, 'compose');

/**
 * The compose files as the `docker compose` CLI (v2) sees them, with the env files and
 * config files the renderer produces (compose checks that env_file paths exist).
 * Needs compose v2: the `docker compose` plugin, or Debian trixie's `docker-compose`
 * package (2.x). Bookworm's docker-compose 1.29 rejects the top-level `name:` key.
 */
async function composeCommand(): Promise<string[]> {
  const candidates = [['docker', 'compose'], ['docker-compose']];
  for (const argv of candidates) {
    try {
      const { stdout } = await run(argv[0]!, [...argv.slice(1), 'version', '--short']);
      if (/^v?2\./.test(stdout.trim())) return argv;
    } catch {
      // try the next one
    }
  }
  throw new Error('docker compose v2 is not installed: install the docker compose plugin or Debian trixie\'s docker-compose (2.x)');
}

interface ComposeConfig {
  name: string;
  services: Record<string, Record<string, unknown> & { volumes?: Array<{ source?: string; target?: string }>; devices?: unknown[] }>;
}

describe('docker compose config', () => {
  let dir: string;
  let compose: string[];
  const config = async (files: string[]): Promise<ComposeConfig> => {
    const args = [...compose.slice(1), '--env-file', join(dir, 'config', 'stack.env')];
    for (const f of files) args.push('-f', join(COMPOSE_DIR, f));
    const { stdout } = await run(compose[0]!, [...args, 'config', '--format', 'json'], { maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout) as ComposeConfig;
  };

  beforeAll(async () => {
    compose = await composeCommand();
    dir = await mkdtemp(join(tmpdir(), 'memu-compose-'));
    await renderStackConfig(
      {
        device: { name: 'Test', hostname: 'memu-hub' },
        paths: { dataDir: join(dir, 'data'), configDir: join(dir, 'config') },
        secrets: generateStackSecrets(),
      },
      join(dir, 'config'),
    );
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it.each([[['stack.yml']], [['stack.yml', 'hailo.yml']]])('accepts %j and mounts no Docker socket', async (files) => {
    const merged = await config(files);
    expect(merged.name).toBe('memu');
    expect(Object.keys(merged.services).sort()).toEqual(
      ['element', 'immich_ml', 'immich_server', 'memu_postgres', 'memu_postgres_init', 'memu_proxy', 'memu_redis', 'memu_tailscale', 'ollama', 'synapse'].sort(),
    );
    for (const [name, service] of Object.entries(merged.services)) {
      for (const mount of service.volumes ?? []) {
        expect(`${name}: ${mount.source}`).not.toMatch(/docker\.sock/);
      }
    }
  });

  it('mounts the rendered config files that exist, from the configured config dir', async () => {
    const merged = await config(['stack.yml']);
    const proxyMounts = merged.services.memu_proxy!.volumes!.map((v) => v.source);
    expect(proxyMounts).toContain(join(dir, 'config', 'nginx', 'site.conf'));
    const synapseMounts = merged.services.synapse!.volumes!.map((v) => v.source);
    expect(synapseMounts).toContain(join(dir, 'data', 'synapse'));
  });
});
