import type { FastifyPluginAsync } from 'fastify';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpModule, type HttpModule } from '../../../../agent/http/index.ts';
import { apiKeyDigest } from '../../../../shared/contracts/agent-api.ts';

const log = pino({ level: 'silent' });
const KEY = 'k3y-0f-th3-fl33t-t00ls-at-least-32-chars';

const routes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', { config: { public: true } }, async () => ({ status: 'ok' }));
  app.get('/api/family', async () => ({ family: 'Smith' }));
};

let http: HttpModule | undefined;
afterEach(async () => {
  await http?.stop();
  http = undefined;
});

async function start(digest: string | undefined, listenHosts = ['127.0.0.1']): Promise<string> {
  http = createHttpModule({ listenHosts, port: 0, routes: [routes], apiKeyDigest: async () => digest }, log);
  await http.start();
  return `http://${listenHosts[0]}:${http.addresses()[0]!.port}`;
}

const get = (url: string, key?: string) => fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });

describe('the HTTP module', () => {
  it('mounts every route under /admin, the prefix the front door forwards', async () => {
    const base = await start(apiKeyDigest(KEY));
    expect(await get(`${base}/admin/api/family`, KEY).then((r) => r.json())).toEqual({ family: 'Smith' });
    expect((await get(`${base}/api/family`, KEY)).status).toBe(404);
  });

  it('answers a public route without a key, and nothing else', async () => {
    const base = await start(apiKeyDigest(KEY));
    expect(await get(`${base}/admin/healthz`).then((r) => r.json())).toEqual({ status: 'ok' });
    const refused = await get(`${base}/admin/api/family`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe('Bearer realm="memu-agent"');
    expect(await refused.json()).toEqual({ error: 'this needs the API key: Authorization: Bearer <key>' });
  });

  it('refuses a wrong key, a key sent another way, and an unknown path without a key (it reveals no routes)', async () => {
    const base = await start(apiKeyDigest(KEY));
    expect((await get(`${base}/admin/api/family`, `${KEY}x`)).status).toBe(401);
    expect((await fetch(`${base}/admin/api/family`, { headers: { authorization: `Basic ${KEY}` } })).status).toBe(401);
    expect((await fetch(`${base}/admin/api/family?key=${KEY}`)).status).toBe(401);
    expect((await get(`${base}/admin/api/no-such-route`)).status).toBe(401);
    expect((await get(`${base}/admin/api/no-such-route`, KEY)).status).toBe(404);
  });

  it('refuses every keyed request while the device has no key, saying how to set one', async () => {
    const base = await start(undefined);
    const refused = await get(`${base}/admin/api/family`, KEY);
    expect(refused.status).toBe(401);
    expect(await refused.json()).toEqual({ error: 'this device has no API key (set agentApiKey in the preseed)' });
    expect((await get(`${base}/admin/healthz`)).status).toBe(200);
  });

  it('listens only on the addresses it is given, and on one more once asked (the Docker bridge)', async () => {
    const base = await start(apiKeyDigest(KEY), ['127.0.0.1']);
    const port = http!.addresses()[0]!.port;
    await expect(fetch(`http://127.0.0.2:${port}/admin/healthz`)).rejects.toThrow();
    await http!.listenAlso('127.0.0.2');
    expect(await fetch(`http://127.0.0.2:${port}/admin/healthz`).then((r) => r.json())).toEqual({ status: 'ok' });
    expect(http!.addresses()).toEqual([
      { host: '127.0.0.1', port },
      { host: '127.0.0.2', port },
    ]);
    expect((await get(`${base}/admin/healthz`)).status).toBe(200);
  });
});
