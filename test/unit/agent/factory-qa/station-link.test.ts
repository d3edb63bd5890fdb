import { freePort } from '../../../helpers/free-port.ts';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createStationLink, stationRetryDelayMs } from '../../../../agent/factory-qa/station-link.ts';
import { parseQaUnitState, type QaUnitState } from '../../../../shared/contracts/qa-report.ts';

// The unit's side of the bench LAN against a real HTTP server on loopback (the station
// stand-in records what arrives); pauses between attempts are shortened through the
// link's retryDelayMs option, the one thing a test may change.

const silent = pino({ level: 'silent' });
const CODE = '7K3M-Q9XD-2HFT-B8RW';
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

type Received = { path: string; state: QaUnitState };

/** A station stand-in: answers `status(n)` to the n-th request (0-based), records every valid message. */
async function station(status: (n: number) => number = () => 200, port = 0): Promise<{ url: string; port: number; received: Received[] }> {
  const received: Received[] = [];
  let n = 0;
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const parsed = parseQaUnitState(Buffer.concat(chunks));
      if (parsed.ok) received.push({ path: req.url!, state: parsed.state });
      const code = status(n++);
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(code === 200 ? { verdict: 'pass' } : { error: 'nope' }));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${bound}`, port: bound, received };
}


const done = { state: 'done' as const, serialNumber: 'serial-1', report: Buffer.from('{}').toString('base64'), signature: Buffer.from('{}').toString('base64') };

describe('the station link', () => {
  it('pauses 1, 2, 4, 8 s between attempts, then every 15 s', () => {
    expect([1, 2, 3, 4, 5, 6, 20].map(stationRetryDelayMs)).toEqual([1000, 2000, 4000, 8000, 15000, 15000, 15000]);
  });

  it("sends each state to the unit's address in order, the format and claim code added", async () => {
    const s = await station();
    const link = createStationLink({ stationUrl: s.url, claimCode: CODE, log: silent });
    link.update({ state: 'testing', step: 'identity', checksDone: 0, stepsDone: 0, stepsTotal: 13 });
    const delivery = await link.finish(done);
    expect(delivery).toMatchObject({ delivered: true, answer: { verdict: 'pass' } });
    expect(s.received.map((r) => [r.path, r.state.format, r.state.claimCode, r.state.state])).toEqual([
      [`/qa/units/${CODE}`, 'memu-qa-unit-state/1', CODE, 'testing'],
      [`/qa/units/${CODE}`, 'memu-qa-unit-state/1', CODE, 'done'],
    ]);
  });

  it('a station that comes up late (the network after QA started) still gets the latest progress and the report', async () => {
    const port = await freePort();
    const delays: number[] = [];
    const link = createStationLink({ stationUrl: `http://127.0.0.1:${port}`, claimCode: CODE, log: silent, retryDelayMs: (n) => (delays.push(n), 30) });
    link.update({ state: 'testing', step: 'identity', stepsDone: 0 });
    link.update({ state: 'testing', step: 'cpu', stepsDone: 1 });
    await new Promise((r) => setTimeout(r, 120));
    const s = await station(() => 200, port);
    await expect(link.finish(done)).resolves.toMatchObject({ delivered: true });
    // The older progress state was replaced before it ever got through: the station gets the newest, then the report.
    expect(s.received.map((r) => r.state.step ?? r.state.state)).toEqual(expect.arrayContaining(['done']));
    expect(s.received.map((r) => r.state.step)).not.toContain('identity');
    expect(s.received.at(-1)!.state.state).toBe('done');
    // The first attempt went on to the newer state at once, without a pause; then the pauses grew with each failure in a row.
    expect(delays.slice(0, 3)).toEqual([2, 3, 4]);
  });

  it('retries the report after 5xx answers and gives a 4xx answer up at once', async () => {
    const flaky = await station((n) => (n < 2 ? 503 : 200));
    const link = createStationLink({ stationUrl: flaky.url, claimCode: CODE, log: silent, retryDelayMs: () => 10 });
    await expect(link.finish(done)).resolves.toMatchObject({ delivered: true, attempts: 3 });

    const refusing = await station(() => 404);
    const refused = createStationLink({ stationUrl: refusing.url, claimCode: CODE, log: silent, retryDelayMs: () => 10 });
    await expect(refused.finish(done)).resolves.toEqual({ delivered: false, attempts: 1, reason: 'the QA station answered HTTP 404: nope' });
  });

  it('a station that is gone holds the end of the run no longer than the bound', async () => {
    const port = await freePort();
    const link = createStationLink({ stationUrl: `http://127.0.0.1:${port}`, claimCode: CODE, log: silent, finalDeliveryMs: 300, retryDelayMs: () => 50 });
    const began = Date.now();
    const delivery = await link.finish(done);
    const took = Date.now() - began;
    expect(delivery.delivered).toBe(false);
    expect(delivery.attempts).toBeGreaterThan(1);
    expect(delivery).toMatchObject({ reason: expect.stringMatching(/^the QA station was not reached within 0 s: .*ECONNREFUSED/) });
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(1000);
  });

  it('a station that accepts the connection and never answers is bounded by the request timeout and the bound', async () => {
    const server = createServer(() => {});
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const link = createStationLink({ stationUrl: url, claimCode: CODE, log: silent, requestTimeoutMs: 100, finalDeliveryMs: 400, retryDelayMs: () => 10 });
    const began = Date.now();
    const delivery = await link.finish(done);
    expect(delivery).toMatchObject({ delivered: false, reason: expect.stringContaining('did not answer within 100 ms') });
    expect(Date.now() - began).toBeLessThan(1000);
    server.closeAllConnections();
  });

  it('stop ends a pending delivery at once, and nothing is sent after finish', async () => {
    const port = await freePort();
    const link = createStationLink({ stationUrl: `http://127.0.0.1:${port}`, claimCode: CODE, log: silent, retryDelayMs: () => 60_000 });
    const pending = link.finish(done);
    setTimeout(() => link.stop(), 50);
    await expect(pending).resolves.toMatchObject({ delivered: false, reason: 'the agent is stopping' });

    const s = await station();
    const finished = createStationLink({ stationUrl: s.url, claimCode: CODE, log: silent });
    await finished.finish(done);
    finished.update({ state: 'testing', step: 'late' });
    await new Promise((r) => setTimeout(r, 50));
    expect(s.received.map((r) => r.state.state)).toEqual(['done']);
  });
});
