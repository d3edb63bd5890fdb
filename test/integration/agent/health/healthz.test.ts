/**
 * The agent's health answers through its own HTTP server, wired by createAgent as on the
 * device: a real container crash-looping in the real dockerd, a provisioning run that
 * really fails (the disk layout it needs is not there), and who may ask: a container on a
 * bridge network (the front door's place) reaches the agent at the bridge gateway, the
 * host's LAN address does not, and only the liveness answer comes without the key.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent, type Agent } from '../../../../agent/agent.ts';
import { loadAgentConfig } from '../../../../agent/config.ts';
import type { HealthReason } from '../../../../agent/health/index.ts';
import { apiKeyDigest } from '../../../../shared/contracts/agent-api.ts';
import { dockerClient, ensureTestImages, removeStack, uniqueProject, type TestImages } from '../../../helpers/docker-fixtures.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';

const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const project = uniqueProject('healthz');
const API_KEY = 'healthz-test-key-0123456789-abcdefghijklmnop';
let dir: string;
let agent: Agent;
let images: TestImages;
let port: number;
let base: string;

interface Healthz {
  status: string;
  reasons: HealthReason[];
  stack: { state: string; loop: string; services: Record<string, { state: string; summary: string }> };
  provisioning: { state: string; step?: string };
}

async function healthz(): Promise<Healthz> {
  return (await fetch(`${base}/admin/api/health`, { headers: { authorization: `Bearer ${API_KEY}` } }).then((r) => r.json())) as Healthz;
}

/** The first non-loopback IPv4 address of this machine: where the LAN would knock. */
function lanAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal && !a.address.startsWith('172.17.'))?.address;
}

/**
 * Runs busybox wget in a container on its own bridge network, as the front door would,
 * at the address host-gateway names (static busybox cannot resolve names through glibc's
 * NSS, so the address is given); returns wget's exit code and output.
 */
async function wgetFromContainer(path: string, key?: string): Promise<{ code: number; output: string }> {
  const gateway = agent.http.addresses()[1]!.host;
  const docker = dockerClient();
  const network = await docker.createNetwork({ Name: `${project}-probe-${Math.random().toString(36).slice(2, 6)}`, Driver: 'bridge' });
  try {
    const header = key ? `--header 'Authorization: Bearer ${key}' ` : '';
    // The exit code is printed after the body, so the output is never bare JSON (which
    // Docker's client would parse instead of returning as text).
    const container = await docker.createContainer({
      Image: images.busybox.reference,
      Cmd: ['sh', '-c', `wget -q -O - ${header}http://${gateway}:${port}${path}; echo " exit=$?"`],
      Tty: true, // raw logs, without Docker's stream framing
      HostConfig: { NetworkMode: network.id },
    });
    try {
      await container.start();
      await container.wait();
      const logs = (await container.logs({ stdout: true, stderr: true })).toString('utf8').replace(/\r/g, '');
      const [, output = '', code = '-1'] = /^([\s\S]*?) exit=(\d+)\s*$/.exec(logs) ?? [];
      return { code: Number(code), output: output.trim() };
    } finally {
      await container.remove({ force: true });
    }
  } finally {
    await network.remove().catch(() => undefined);
  }
}

beforeAll(async () => {
  images = await ensureTestImages();
  dir = await mkdtemp(join(tmpdir(), 'memu-healthz-'));
  const stackDir = join(dir, 'stack');
  const dataDir = join(dir, 'data');
  await mkdir(stackDir, { recursive: true });
  await mkdir(join(dataDir, 'secrets'), { recursive: true });
  // What provisioning stores for a preseeded agentApiKey: its SHA-256, nothing else.
  await writeFile(join(dataDir, 'secrets', 'agent-api-key.sha256'), `${apiKeyDigest(API_KEY)}\n`, { mode: 0o600 });
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
    port: 0,
    dataDir,
    stackDir,
    layoutPath: join(dir, 'no-such-layout.json'),
    dockerSocket: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock',
    healthSnapshotPath: join(dir, 'health.json'),
  };
  // The device's rule is 10 restarts in 30 minutes; 3 with short delays reaches the same rule quickly.
  // The device's own checks (disk, memory, clock…) would judge this host; the stack's reasons are what is tested here.
  agent = createAgent(config, log, { stack: { eventDebounceMs: 50, backoff: { baseDelayMs: 200, maxRestartsInWindow: 3, windowMs: 10 * 60_000 } }, healthChecks: [] });
  await agent.start();
  port = agent.http.addresses()[0]!.port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await agent?.stop();
  await removeStack(project);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the health report (real dockerd, real HTTP)', () => {
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
    agent.stack.startLoop();
    const deadline = Date.now() + 60_000;
    let body = await healthz();
    while (!body.reasons.some((r) => r.code === 'service-crash-looping')) {
      if (Date.now() > deadline) throw new Error(`no crash-loop reason within 60 s: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 200));
      body = await healthz();
    }
    // An app the family cannot use: the device is unhealthy, not merely degraded.
    expect(body.status).toBe('unhealthy');
    const stackReasons = body.reasons.filter((r) => r.source === 'stack');
    expect(stackReasons).toEqual([
      {
        source: 'stack',
        code: 'service-crash-looping',
        message: expect.stringMatching(/^service flaky is crash-looping \(exit code 3, restarted 3 times; left alone until .+\)$/),
        status: 'unhealthy',
      },
    ]);
    expect(body.stack.loop).toBe('running');
    expect(body.stack.services.flaky).toMatchObject({ state: 'crash-looping', summary: expect.stringContaining('flaky is crash-looping') });
    expect(body.stack.services.steady).toMatchObject({ state: 'running', summary: 'steady is running' });
  });
});

describe('who may ask (real dockerd, real network)', () => {
  it('answers the liveness word alone without a key: no reason, step, hostname or service', async () => {
    const res = await fetch(`${base}/admin/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'unhealthy' });
    expect((await fetch(`${base}/admin/api/health`)).status).toBe(401);
  });

  it('is not reachable on the host\'s LAN address, only on loopback and the Docker bridge', async () => {
    const lan = lanAddress();
    if (!prerequisite('a non-loopback IPv4 address on this machine', lan !== undefined)) return;
    await expect(fetch(`http://${lan}:${port}/admin/healthz`, { signal: AbortSignal.timeout(5000) })).rejects.toThrow();
    const hosts = agent.http.addresses().map((a) => a.host);
    expect(hosts[0]).toBe('127.0.0.1');
    expect(hosts).not.toContain(lan);
    expect(hosts).not.toContain('0.0.0.0');
  });

  it('answers a container on a bridge network at the Docker bridge gateway: liveness without a key, the report only with it', async () => {
    // The bridge listener comes once Docker answers; it has by the time the stack loop runs.
    for (let i = 0; i < 100 && agent.http.addresses().length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    expect(agent.http.addresses()).toHaveLength(2);
    const gateway = (await dockerClient().getNetwork('bridge').inspect()) as { IPAM: { Config: { Gateway: string }[] } };
    expect(agent.http.addresses()[1]!.host).toBe(gateway.IPAM.Config[0]!.Gateway);
    const live = await wgetFromContainer('/admin/healthz');
    expect(live).toEqual({ code: 0, output: '{"status":"unhealthy"}' });
    const refused = await wgetFromContainer('/admin/api/health');
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain('401');
    const allowed = await wgetFromContainer('/admin/api/health', API_KEY);
    expect(allowed.code).toBe(0);
    expect(JSON.parse(allowed.output)).toMatchObject({ status: 'unhealthy', provisioning: { state: 'failed' } });
  });
});
