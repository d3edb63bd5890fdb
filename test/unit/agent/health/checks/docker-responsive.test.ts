import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_DOCKER_PING, createDockerResponsiveCheck, evaluateDockerPing, pingDocker } from '../../../../../agent/health/checks/docker-responsive.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/** A unix socket that answers /_ping after `delayMs`, or never. */
async function fakeDockerd(delayMs: number | 'never'): Promise<string> {
  const path = join(await tempDir('memu-docker-ping-'), 'docker.sock');
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', () => {
      if (delayMs === 'never') return;
      setTimeout(() => socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK'), delayMs);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(path, r));
  return path;
}

describe('evaluateDockerPing', () => {
  const metric = (value: number) => [{ name: 'memu_docker_ping_seconds', help: expect.any(String), type: 'gauge', value }];

  it(`is ok up to ${DEFAULT_DOCKER_PING.slowSeconds} s and degraded just past it`, () => {
    expect(evaluateDockerPing({ answered: true, seconds: 0.004 })).toEqual([{ check: 'docker-responsive', status: 'ok', reason: 'Docker answered in 0.004 s.', metrics: metric(0.004) }]);
    expect(evaluateDockerPing({ answered: true, seconds: 3 })[0]!.status).toBe('ok');
    expect(evaluateDockerPing({ answered: true, seconds: 3.2 })).toEqual([
      {
        check: 'docker-responsive',
        status: 'degraded',
        reason: 'Docker answered slowly: 3.2 s (it usually takes well under a second).',
        action: 'The box is probably very busy; if it stays slow, restart the box.',
        metrics: metric(3.2),
      },
    ]);
  });

  it('calls one slow answer a busy moment: degraded only when the ping before was slow too', () => {
    expect(evaluateDockerPing({ answered: true, seconds: 5.4 }, DEFAULT_DOCKER_PING, { previousSlow: false })).toEqual([
      { check: 'docker-responsive', status: 'ok', reason: 'Docker answered slowly once (5.4 s); a busy moment.', metrics: metric(5.4) },
    ]);
    expect(evaluateDockerPing({ answered: true, seconds: 5.4 }, DEFAULT_DOCKER_PING, { previousSlow: true })[0]!.status).toBe('degraded');
  });

  it('says Docker is still starting, degraded, when nothing answers in the first minutes after boot', () => {
    const refused = { answered: false, seconds: 0.001, why: 'refused', detail: 'ENOENT on its socket' } as const;
    expect(evaluateDockerPing(refused, DEFAULT_DOCKER_PING, { uptimeSeconds: 40 })).toEqual([
      { check: 'docker-responsive', status: 'degraded', reason: 'Docker is still starting (the box started 40 s ago).', action: 'Wait a minute; the apps come up once Docker is running.', metrics: metric(0.001) },
    ]);
    expect(evaluateDockerPing(refused, DEFAULT_DOCKER_PING, { uptimeSeconds: 180 })[0]!.status).toBe('unhealthy');
    // A hung daemon just after boot is still a hung daemon.
    expect(evaluateDockerPing({ answered: false, seconds: 10, why: 'timeout', detail: 'timed out' }, DEFAULT_DOCKER_PING, { uptimeSeconds: 40 })[0]!.status).toBe('unhealthy');
  });

  it('is unhealthy without an answer, saying why and that the box restarts it', () => {
    expect(evaluateDockerPing({ answered: false, seconds: 10, why: 'timeout', detail: 'timed out' })).toEqual([
      {
        check: 'docker-responsive',
        status: 'unhealthy',
        reason: 'Docker stopped answering: no answer within 10 s; the box restarts it.',
        action: 'The apps stop working while Docker is down. If this stays, restart the box.',
        metrics: metric(10),
      },
    ]);
    expect(evaluateDockerPing({ answered: false, seconds: 0.001, why: 'refused', detail: 'ECONNREFUSED on its socket' })[0]!.reason).toBe(
      'Docker is not running (ECONNREFUSED on its socket); the box restarts it.',
    );
  });
});

describe('pingDocker on a socket', () => {
  it('measures an answer', async () => {
    const ping = await pingDocker(await fakeDockerd(50), 2);
    expect(ping).toMatchObject({ answered: true });
    expect(ping.seconds).toBeGreaterThanOrEqual(0.04);
    expect(ping.seconds).toBeLessThan(2);
  });

  it('gives up at the bound when the daemon takes the connection but never answers (a stopped dockerd)', async () => {
    const started = Date.now();
    const ping = await pingDocker(await fakeDockerd('never'), 0.3);
    expect(ping).toEqual({ answered: false, seconds: 0.3, why: 'timeout', detail: 'timed out' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('says not running when nothing listens on the socket', async () => {
    const missing = join(await tempDir('memu-docker-ping-'), 'docker.sock');
    expect(await pingDocker(missing, 1)).toMatchObject({ answered: false, why: 'refused', detail: 'ENOENT on its socket' });
  });

  it('runs as a HealthCheck with its thresholds', async () => {
    const check = createDockerResponsiveCheck({ socketPath: await fakeDockerd(250), thresholds: { slowSeconds: 0.1, timeoutSeconds: 2 } });
    expect(check.name).toBe('docker-responsive');
    expect((await check.run())[0]!.status).toBe('ok');
    expect((await check.run())[0]!.status).toBe('degraded');
  });
});
