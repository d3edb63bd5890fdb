import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStackConfig } from '../../../agent/config-templates/render-stack.ts';
import { generateStackSecrets } from '../../../agent/config-templates/stack-secrets.ts';
import { createHealthModule } from '../../../agent/health/index.ts';
import { createHttpModule, type HttpModule } from '../../../agent/http/index.ts';
import { apiKeyDigest } from '../../../shared/contracts/agent-api.ts';
import pino from 'pino';
import { nginxConfigTest, startNginx, type NginxInstance } from '../../helpers/nginx.ts';

const log = pino({ level: 'silent' });

/**
 * The rendered front door (compose/templates/nginx/site.conf.tmpl) in a real nginx, in
 * front of small Node servers standing in for Synapse, Element and the agent. The
 * upstream addresses are ordinary template values (frontDoor.*), pointed at 127.0.0.1.
 */
const NGINX_PORT = 18100;
const SYNAPSE_PORT = 18101;
const ELEMENT_PORT = 18102;
const AGENT_PORT = 18103;
const REAL_NGINX_PORT = 18104;
const REAL_AGENT_PORT = 18105;
const HOST = '127.0.0.1';
const UPLOAD_BYTES = 2 * 1024 ** 3;

interface Seen {
  upstream: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

interface UploadRecord {
  bytes: number;
  sha256: string;
  firstByteAt: number;
}

const upgradedSockets = new Set<Socket>();

function upstreamServer(name: string, uploads: UploadRecord[]): Server {
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url?.startsWith('/_matrix/media/')) {
      const hash = createHash('sha256');
      const record: UploadRecord = { bytes: 0, sha256: '', firstByteAt: 0 };
      req.on('data', (chunk: Buffer) => {
        if (record.bytes === 0) record.firstByteAt = Date.now();
        record.bytes += chunk.length;
        hash.update(chunk);
      });
      req.on('end', () => {
        record.sha256 = hash.digest('hex');
        uploads.push(record);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes: record.bytes }));
      });
      return;
    }
    const seen: Seen = { upstream: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers };
    res.writeHead(200, { 'content-type': 'application/json', 'x-frame-options': 'DENY' });
    res.end(JSON.stringify(seen));
  });
  // A WebSocket-style upgrade: a proper handshake, then echo whatever arrives.
  server.on('upgrade', (req, socket: Socket) => {
    const accept = createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nX-Upstream: ${name}\r\n\r\n`,
    );
    upgradedSockets.add(socket);
    socket.on('data', (data) => socket.write(data));
    socket.on('end', () => socket.destroy());
  });
  return server;
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve());
  });
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function get(path: string, opts: { method?: string; headers?: Record<string, string>; port?: number } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: HOST, port: opts.port ?? NGINX_PORT, path, method: opts.method ?? 'GET', headers: { host: 'memu-hub', ...opts.headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('front door (nginx)', () => {
  let dir: string;
  let siteConf: string;
  let nginx: NginxInstance;
  const uploads: UploadRecord[] = [];
  const servers: Server[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-frontdoor-'));
    await renderStackConfig(
      {
        device: { name: 'The Smiths', hostname: 'memu-hub' },
        matrix: { serverName: 'memu-hub.example.ts.net' },
        paths: { dataDir: join(dir, 'data') },
        frontDoor: {
          listen: `${HOST}:${NGINX_PORT}`,
          resolver: HOST,
          synapse: `${HOST}:${SYNAPSE_PORT}`,
          element: `${HOST}:${ELEMENT_PORT}`,
          agent: `${HOST}:${AGENT_PORT}`,
        },
        secrets: generateStackSecrets(),
      },
      join(dir, 'config'),
    );
    siteConf = await readFile(join(dir, 'config', 'nginx', 'site.conf'), 'utf8');
    for (const [name, port] of [
      ['synapse', SYNAPSE_PORT],
      ['element', ELEMENT_PORT],
      ['agent', AGENT_PORT],
    ] as const) {
      const server = upstreamServer(name, uploads);
      await listen(server, port);
      servers.push(server);
    }
    nginx = await startNginx(siteConf, { host: HOST, port: NGINX_PORT });
  });

  afterAll(async () => {
    await nginx?.stop();
    for (const socket of upgradedSockets) socket.destroy();
    for (const server of servers) server.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes nginx -t', async () => {
    expect(await nginxConfigTest(siteConf)).toMatch(/test is successful/);
  });

  it.each([
    ['/', 'element'],
    ['/index.html?x=1', 'element'],
    ['/_matrix/client/versions', 'synapse'],
    ['/_matrix/media/v3/download/memu-hub/abc', 'synapse'],
    ['/_synapse/client/pick_username/account_details', 'synapse'],
    ['/admin/', 'agent'],
    ['/admin/api/status?verbose=1', 'agent'],
  ])('routes %s to %s with the original path, Host and X-Forwarded-* headers', async (path, upstream) => {
    const res = await get(path);
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as Seen;
    expect(seen.upstream).toBe(upstream);
    expect(seen.url).toBe(path);
    expect(seen.headers.host).toBe('memu-hub');
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-real-ip']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe('memu-hub');
  });

  it('appends to an existing X-Forwarded-For chain', async () => {
    const seen = JSON.parse((await get('/_matrix/client/versions', { headers: { 'x-forwarded-for': '100.64.0.7' } })).body) as Seen;
    expect(seen.headers['x-forwarded-for']).toBe('100.64.0.7, 127.0.0.1');
  });

  it('redirects /admin to /admin/ and /photos to Immich on its own port of the same host', async () => {
    const admin = await get('/admin');
    expect(admin.status).toBe(301);
    expect(admin.headers.location).toMatch(/\/admin\/$/);
    const photos = await get('/photos');
    expect(photos.status).toBe(302);
    expect(photos.headers.location).toBe('http://memu-hub:2283/photos');
    const asset = await get('/photos/0b5f1c2e?x=1');
    expect(asset.headers.location).toBe('http://memu-hub:2283/photos/0b5f1c2e?x=1');
  });

  it('answers the Matrix well-known documents itself, as JSON naming this device', async () => {
    const server = await get('/.well-known/matrix/server');
    expect(server.status).toBe(200);
    expect(server.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.body)).toEqual({ 'm.server': 'memu-hub.example.ts.net:443' });

    const client = await get('/.well-known/matrix/client');
    expect(client.status).toBe(200);
    expect(client.headers['content-type']).toBe('application/json');
    expect(client.headers['access-control-allow-origin']).toBe('*');
    expect(JSON.parse(client.body)).toEqual({ 'm.homeserver': { base_url: 'http://memu-hub' } });

    const preflight = await get('/.well-known/matrix/client', { method: 'OPTIONS', headers: { origin: 'http://app.example' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-methods']).toMatch(/GET/);
  });

  it('sends security headers once, without the nginx version', async () => {
    const res = await get('/');
    expect(res.headers.server).toBe('nginx');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // The upstream said DENY; the front door's single value wins, never both.
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
  });

  it('passes a WebSocket upgrade through /_matrix', async () => {
    const key = Buffer.from('memu-front-door!').toString('base64');
    const { socket, headers } = await new Promise<{ socket: Socket; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const req = request({
        host: HOST,
        port: NGINX_PORT,
        path: '/_matrix/client/unstable/ws',
        headers: { host: 'memu-hub', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
      });
      req.on('upgrade', (res, sock) => resolve({ socket: sock, headers: res.headers }));
      req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
      req.on('error', reject);
      req.end();
    });
    expect(headers['x-upstream']).toBe('synapse');
    expect(headers['sec-websocket-accept']).toBe(createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'));
    const echoed = await new Promise<string>((resolve) => {
      socket.once('data', (d: Buffer) => resolve(d.toString()));
      socket.write('ping through the front door');
    });
    expect(echoed).toBe('ping through the front door');
    socket.destroy();
  });

  it('streams a 2 GB upload to the app without nginx writing it to disk', async () => {
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131) & 0xff;
    const expected = createHash('sha256');
    let maxSpooled = 0;
    const watcher = setInterval(async () => {
      for (const d of [nginx.clientBodyTempDir, nginx.proxyTempDir]) {
        const entries = await readdir(d, { recursive: true }).catch(() => []);
        maxSpooled = Math.max(maxSpooled, entries.length);
      }
    }, 100);
    let clientDoneAt = 0;
    const response = await new Promise<Response>((resolve, reject) => {
      const req = request(
        {
          host: HOST,
          port: NGINX_PORT,
          path: '/_matrix/media/v3/upload?filename=holiday.mp4',
          method: 'POST',
          headers: { host: 'memu-hub', 'content-type': 'video/mp4', 'content-length': String(UPLOAD_BYTES) },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      let sent = 0;
      // Generated as a stream: one 1 MiB buffer reused, honouring backpressure.
      const pump = () => {
        while (sent < UPLOAD_BYTES) {
          sent += chunk.length;
          expected.update(chunk);
          if (!req.write(chunk)) return req.once('drain', pump);
        }
        clientDoneAt = Date.now();
        req.end();
      };
      pump();
    });
    clearInterval(watcher);
    expect(response.status).toBe(200);
    const record = uploads.at(-1)!;
    expect(record.bytes).toBe(UPLOAD_BYTES);
    expect(record.sha256).toBe(expected.digest('hex'));
    // Streaming: the app had the first bytes long before the client finished sending.
    expect(record.firstByteAt).toBeGreaterThan(0);
    expect(record.firstByteAt).toBeLessThan(clientDoneAt);
    expect(maxSpooled).toBe(0);
    expect(await readdir(nginx.clientBodyTempDir).catch(() => [])).toEqual([]);
    expect(await nginx.errorLog()).not.toMatch(/buffered to a temporary file/);
  });

  it('answers 503 "starting" with Retry-After while an app is down', async () => {
    const element = servers[1]!;
    await new Promise((r) => element.close(r));
    const res = await get('/');
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('10');
    expect(res.body).toMatch(/Memu is starting up/);
  });
});

describe('front door (nginx) to the real agent API', () => {
  const KEY = 'front-door-test-key-0123456789abcdefghijkl';
  let dir: string;
  let nginx: NginxInstance;
  let http: HttpModule;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-frontdoor-agent-'));
    const health = createHealthModule({ version: '1.0.0', dataDir: dir, sources: [{ name: 'stack', report: () => ({ sections: { stack: { state: 'present' } }, reasons: [] }) }] }, log);
    await health.start();
    http = createHttpModule({ listenHosts: [HOST], port: REAL_AGENT_PORT, routes: [health.routes], apiKeyDigest: async () => apiKeyDigest(KEY), cookieSecretPath: join(dir, 'cookie-secret') }, log);
    await http.start();
    await renderStackConfig(
      {
        device: { name: 'The Smiths', hostname: 'memu-hub' },
        paths: { dataDir: join(dir, 'data') },
        frontDoor: { listen: `${HOST}:${REAL_NGINX_PORT}`, resolver: HOST, synapse: `${HOST}:${SYNAPSE_PORT}`, element: `${HOST}:${ELEMENT_PORT}`, agent: `${HOST}:${REAL_AGENT_PORT}` },
        secrets: generateStackSecrets(),
      },
      join(dir, 'config'),
    );
    nginx = await startNginx(await readFile(join(dir, 'config', 'nginx', 'site.conf'), 'utf8'), { host: HOST, port: REAL_NGINX_PORT });
  });

  afterAll(async () => {
    await nginx?.stop();
    await http?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends the front page to the setup wizard until the agent says setup is finished', async () => {
    const res = await get('/', { port: REAL_NGINX_PORT });
    expect(res.status).toBe(302);
    expect(res.headers.location).toMatch(/\/admin\/setup$/);
  });

  it('answers the liveness word at /admin/healthz to anyone on the LAN', async () => {
    const res = await get('/admin/healthz', { port: REAL_NGINX_PORT });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ status: 'ok' });
  });

  it('passes the agent\'s refusal through without the key, and the report with it', async () => {
    const refused = await get('/admin/api/health', { port: REAL_NGINX_PORT });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer realm="memu-agent"');
    const allowed = await get('/admin/api/health', { port: REAL_NGINX_PORT, headers: { authorization: `Bearer ${KEY}` } });
    expect(allowed.status).toBe(200);
    expect(JSON.parse(allowed.body)).toMatchObject({ status: 'ok', version: '1.0.0', stack: { state: 'present' } });
  });
});
