/**
 * /healthz through the agent's own HTTP server, with the modules wired as agent.ts wires
 * them: a real container crash-looping in the real dockerd, and a provisioning run that
 * really fails (the disk layout it needs is not there).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../../agent/config.ts';
import { createHealthModule, type HealthReason } from '../../../../agent/health/index.ts';
import { createHttpModule } from '../../../../agent/http/index.ts';
import type { AgentModule } from '../../../../agent/module.ts';
import { createProvisioningModule } from '../../../../agent/provisioning/index.ts';
import { createStackModule, type StackModule } from '../../../../agent/stack/index.ts';
import { ensureTestImages, removeStack, uniqueProject } from '../../../helpers/docker-fixtures.ts';

const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const project = uniqueProject('healthz');
let dir: string;
let stack: StackModule;
let base: string;
const modules: AgentModule[] = [];

interface Healthz {
  status: string;
  reasons: HealthReason[];
  stack: { state: string; loop: string; services: Record<string, { state: string; summary: string }> };
  provisioning: { state: string; step?: string };
}

async function healthz(): Promise<Healthz> {
  return (await fetch(`${base}/healthz`).then((r) => r.json())) as Healthz;
}

beforeAll(async () => {
  const images = await ensureTestImages();
  dir = await mkdtemp(join(tmpdir(), 'memu-healthz-'));
  const stackDir = join(dir, 'stack');
  const dataDir = join(dir, 'data');
  await mkdir(stackDir, { recursive: true });
  await mkdir(dataDir, { recursive: true });
  await writeFile(
    join(stackDir, 'stack.yml'),
    [
      `name: ${project}`,
      'services:',
      '  flaky:',
      `    image: ${images.busybox.reference}`,
      '    command: ["sh", "-c", "exit 3"]',
      '    restart: always',
      '  steady:',
      `    image: ${images.busybox.reference}`,
      `    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]`,
      '    restart: always',
      '',
    ].join('\n'),
  );
  await writeFile(join(stackDir, 'images.lock.json'), JSON.stringify(images.lock));
  const config = {
    ...loadAgentConfig({}),
    listenHost: '127.0.0.1',
    port: 0,
    dataDir,
    stackDir,
    layoutPath: join(dir, 'no-such-layout.json'),
    dockerSocket: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock',
  };
  // The device's rule is 10 restarts in 30 minutes; 3 with short delays reaches the same rule quickly.
  stack = createStackModule(
    { stackDir, dataDir, dockerSocket: config.dockerSocket, tuning: { eventDebounceMs: 50, backoff: { baseDelayMs: 200, maxRestartsInWindow: 3, windowMs: 10 * 60_000 } } },
    log,
  );
  const provisioning = createProvisioningModule(config, log);
  const health = createHealthModule({ version: config.version, dataDir, sources: [provisioning.health, stack.health] }, log);
  const http = createHttpModule({ listenHost: config.listenHost, port: config.port, routes: [health.routes] }, log);
  for (const m of [stack, provisioning, health, http]) {
    await m.start();
    modules.push(m);
  }
  base = `http://127.0.0.1:${http.address().port}`;
});

afterAll(async () => {
  for (const m of modules.reverse()) await m.stop();
  await removeStack(project);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('GET /healthz (real dockerd, real HTTP)', () => {
  it('says degraded while provisioning has failed, naming the step and the error', async () => {
    let body = await healthz();
    for (let i = 0; i < 100 && body.provisioning.state !== 'failed'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      body = await healthz();
    }
    expect(body.status).toBe('degraded');
    expect(body.reasons).toContainEqual({
      source: 'provisioning',
      code: 'provisioning-failed',
      message: expect.stringMatching(/^provisioning failed at step prepare: cannot read the disk layout .*no-such-layout\.json/),
    });
  });

  it('names a crash-looping service as a reason, and not the one that runs', async () => {
    stack.startLoop();
    const deadline = Date.now() + 60_000;
    let body = await healthz();
    while (!body.reasons.some((r) => r.code === 'service-crash-looping')) {
      if (Date.now() > deadline) throw new Error(`no crash-loop reason within 60 s: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 200));
      body = await healthz();
    }
    expect(body.status).toBe('degraded');
    const stackReasons = body.reasons.filter((r) => r.source === 'stack');
    expect(stackReasons).toEqual([
      {
        source: 'stack',
        code: 'service-crash-looping',
        message: expect.stringMatching(/^service flaky is crash-looping \(exit code 3, restarted 3 times; left alone until .+\)$/),
      },
    ]);
    expect(body.stack.loop).toBe('running');
    expect(body.stack.services.flaky).toMatchObject({ state: 'crash-looping', summary: expect.stringContaining('flaky is crash-looping') });
    expect(body.stack.services.steady).toMatchObject({ state: 'running', summary: 'steady is running' });
  });
});
