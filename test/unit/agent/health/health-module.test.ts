import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHealthModule, type HealthSource } from '../../../../agent/health/index.ts';

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
    expect(body.agent).toMatchObject({ rssBytes: expect.any(Number), cpuSeconds: expect.any(Number) });
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
