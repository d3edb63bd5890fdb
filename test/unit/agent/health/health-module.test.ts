import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHealthModule, type HealthCheck, type HealthSource } from '../../../../agent/health/index.ts';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function healthz(sources: HealthSource[], url = '/api/health') {
  const dir = await mkdtemp(join(tmpdir(), 'memu-health-'));
  dirs.push(dir);
  await writeFile(join(dir, 'boot_id'), 'b00t-1d\n');
  const health = createHealthModule({ version: '1.2.3', dataDir: dir, sources, bootIdPath: join(dir, 'boot_id') }, log);
  await health.start();
  const app = Fastify();
  await app.register(health.routes);
  const response = await app.inject({ method: 'GET', url });
  await app.close();
  return { code: response.statusCode, body: response.json() as Record<string, unknown> };
}

/** A module that is well and reports these sections. */
const wellSource = (name: string, sections: Record<string, unknown>): HealthSource => ({ name, report: () => ({ sections, reasons: [] }) });

describe('GET /api/health, the report', () => {
  it('says ok when no module has a reason, with every module\'s sections and the agent\'s own facts', async () => {
    const { code, body } = await healthz([wellSource('provisioning', { provisioning: { state: 'done' } }), wellSource('stack', { stack: { state: 'none' } })]);
    expect(code).toBe(200);
    expect(body).toMatchObject({ status: 'ok', reasons: [], version: '1.2.3', bootId: 'b00t-1d', provisioning: { state: 'done' }, stack: { state: 'none' } });
    expect(body.data).toMatchObject({ sizeBytes: expect.any(Number), freeBytes: expect.any(Number) });
    expect(body.agent).toMatchObject({ rssBytes: expect.any(Number), heapUsedBytes: expect.any(Number), heapTotalBytes: expect.any(Number), externalBytes: expect.any(Number), cpuSeconds: expect.any(Number) });
  });

  it('says degraded with every module\'s reasons, in module order', async () => {
    const failed = { source: 'provisioning', code: 'provisioning-failed', message: 'provisioning failed at step bring-stack-up: timeout' };
    const looping = { source: 'stack', code: 'service-crash-looping', message: 'service flaky is crash-looping (…)' };
    const { body } = await healthz([
      { name: 'provisioning', report: async () => ({ sections: {}, reasons: [failed] }) },
      { name: 'stack', report: () => ({ sections: {}, reasons: [looping] }) },
    ]);
    expect(body).toMatchObject({ status: 'degraded', reasons: [failed, looping] });
  });

  it('turns a module that cannot report into a reason instead of failing the route', async () => {
    const { code, body } = await healthz([
      { name: 'stack', report: () => Promise.reject(new Error('docker socket gone')) },
      wellSource('provisioning', { provisioning: { state: 'done' } }),
    ]);
    expect(code).toBe(200);
    expect(body).toMatchObject({
      status: 'degraded',
      reasons: [{ source: 'stack', code: 'report-failed', message: 'stack could not report its health: docker socket gone' }],
      provisioning: { state: 'done' },
    });
  });
});

describe('GET /healthz, the liveness answer', () => {
  it('is the status word alone: nothing that names the device, a step or a service', async () => {
    const failed = { source: 'provisioning', code: 'provisioning-failed', message: 'provisioning failed at step bring-stack-up: timeout' };
    const { code, body } = await healthz([{ name: 'provisioning', report: () => ({ sections: { provisioning: { state: 'failed' } }, reasons: [failed] }) }], '/healthz');
    expect(code).toBe(200);
    expect(body).toEqual({ status: 'degraded' });
  });

  it('says starting while a module is still bringing the device up, and ok after', async () => {
    let starting = true;
    const source: HealthSource = { name: 'provisioning', report: () => ({ sections: {}, reasons: [], starting }) };
    expect((await healthz([source], '/healthz')).body).toEqual({ status: 'starting' });
    starting = false;
    expect((await healthz([source], '/healthz')).body).toEqual({ status: 'ok' });
  });

  it('says degraded rather than starting when a module has a reason', async () => {
    const reason = { source: 'stack', code: 'service-error', message: 'x' };
    const { body } = await healthz([{ name: 'p', report: () => ({ sections: {}, reasons: [], starting: true }) }, { name: 's', report: () => ({ sections: {}, reasons: [reason] }) }], '/healthz');
    expect(body).toEqual({ status: 'degraded' });
  });
});

describe('the named checks in the report, the metrics and the snapshot', () => {
  it('says unhealthy with the check\'s reason, since when and what to do; the metrics carry every check; the snapshot is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-health-'));
    dirs.push(dir);
    const checks: HealthCheck[] = [
      { name: 'disk', intervalMs: 60_000, run: async () => [{ check: 'data-disk-space', status: 'unhealthy', reason: 'The data disk has 80 MB free.', action: 'Delete old videos.', metrics: [{ name: 'node_filesystem_avail_bytes', help: 'Free bytes.', type: 'gauge', labels: { mountpoint: '/var/lib/memu' }, value: 80e6 }] }] },
      { name: 'clock', intervalMs: 60_000, run: async () => [{ check: 'clock-sync', status: 'ok', reason: 'The clock is synchronised.', metrics: [] }] },
    ];
    const health = createHealthModule({ version: '1.2.3', dataDir: dir, sources: [wellSource('provisioning', {})], checks, snapshotPath: join(dir, 'run/health.json'), bootIdPath: join(dir, 'none') }, log);
    await health.start();
    await health.checkNow();
    const body = await health.report();
    expect(body.status).toBe('unhealthy');
    expect(body.reasons).toEqual([{ source: 'health', code: 'data-disk-space', status: 'unhealthy', message: 'The data disk has 80 MB free.', action: 'Delete old videos.', since: expect.any(Number) }]);
    expect(body.checks.map((c) => [c.check, c.status])).toEqual([['data-disk-space', 'unhealthy'], ['clock-sync', 'ok']]);
    const metrics = await health.metrics();
    expect(metrics).toContain('node_filesystem_avail_bytes{mountpoint="/var/lib/memu"} 80000000');
    expect(metrics).toContain('memu_health_status{status="unhealthy"} 1');
    expect(metrics).toContain('memu_health_check_status{check="clock-sync"} 0');
    expect(metrics).toContain('memu_health_check_status{check="data-disk-space"} 2');
    const snapshot = JSON.parse(await readFile(join(dir, 'run/health.json'), 'utf8'));
    expect(snapshot.report.status).toBe('unhealthy');
    await health.stop();
  });

  it('says starting until the first round of checks has finished', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-health-'));
    dirs.push(dir);
    let release!: () => void;
    const slow = new Promise<void>((r) => (release = r));
    const checks: HealthCheck[] = [{ name: 'slow', intervalMs: 60_000, run: async () => (await slow, [{ check: 'slow', status: 'ok', reason: 'fine', metrics: [] }]) }];
    const health = createHealthModule({ version: '1', dataDir: dir, sources: [], checks, bootIdPath: join(dir, 'none') }, log);
    await health.start();
    expect(await health.status()).toBe('starting');
    release();
    await health.checkNow();
    expect(await health.status()).toBe('ok');
    await health.stop();
  });
});

describe('the clean-shutdown mark', () => {
  it('is set when the agent stops because the system shuts down, and not when it is stopped by hand', async () => {
    for (const stopping of [true, false]) {
      const dir = await mkdtemp(join(tmpdir(), 'memu-health-'));
      dirs.push(dir);
      let marked = 0;
      const health = createHealthModule(
        { version: '1', dataDir: dir, sources: [], bootRecord: { markCleanShutdown: async () => void marked++ }, systemStopping: async () => stopping, bootIdPath: join(dir, 'none') },
        log,
      );
      await health.start();
      await health.stop();
      expect(marked).toBe(stopping ? 1 : 0);
    }
  });
});
