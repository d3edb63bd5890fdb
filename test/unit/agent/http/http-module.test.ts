import type { FastifyPluginAsync } from 'fastify';
import pino from 'pino';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHttpModule, type HttpModule } from '../../../../agent/http/index.ts';
import { apiKeyDigest } from '../../../../shared/contracts/agent-api.ts';

const log = pino({ level: 'silent' });
const KEY = 'k3y-0f-th3-fl33t-t00ls-at-least-32-chars';

const routes: FastifyPluginAsync = async (app) => {
  app.get('/form', async (_request, reply) => ({ csrf: reply.generateCsrf() }));
  app.post('/form', async () => ({ saved: true }));
  app.get('/healthz', { config: { access: 'public' } }, async () => ({ status: 'ok' }));
  app.get('/api/family', async () => ({ family: 'Smith' }));
  app.post('/api/family', async () => ({ changed: true }));
};

let http: HttpModule | undefined;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-http-'));
});
afterEach(async () => {
  await http?.stop();
  http = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function start(digest: string | undefined, listenHosts = ['127.0.0.1']): Promise<string> {
  http = createHttpModule({ listenHosts, port: 0, routes: [routes], apiKeyDigest: async () => digest, cookieSecretPath: join(dir, 'cookie-secret') }, log);
  await http.start();
  return `http://${listenHosts[0]}:${http.addresses()[0]!.port}`;
}

const get = (url: string, key?: string) => fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {} });

describe('the HTTP module', () => {
  it('mounts every route under /admin, the prefix the front door forwards', async () => {
    const base = await start(apiKeyDigest(KEY));
    expect(await get(`${base}/admin/api/family`, KEY).then((r) => r.json())).toEqual({ family: 'Smith' });
    // Outside /admin/api/ a path is an admin page: without a session, not even "not found".
    expect((await get(`${base}/api/family`, KEY)).status).toBe(401);
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

describe('admin routes: a session, and a CSRF token on every change', () => {
  const admin = { username: 'mum', displayName: 'Mum', sessionIdHash: 'a'.repeat(64) };

  async function startWithSession(): Promise<string> {
    http = createHttpModule(
      {
        listenHosts: ['127.0.0.1'],
        port: 0,
        routes: [routes],
        apiKeyDigest: async () => apiKeyDigest(KEY),
        cookieSecretPath: join(dir, 'cookie-secret'),
        sessions: { adminFor: async (request) => (request.headers.cookie?.includes('session=mum') ? admin : undefined) },
      },
      log,
    );
    await http.start();
    return `http://127.0.0.1:${http.addresses()[0]!.port}`;
  }

  it('sends a browser without a session to the login page, and a script a 401', async () => {
    const base = await startWithSession();
    const page = await fetch(`${base}/admin/form`, { headers: { accept: 'text/html' }, redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/admin/login?next=%2Fadmin%2Fform');
    expect((await fetch(`${base}/admin/form`)).status).toBe(401);
  });

  it('refuses a change without the CSRF token of this device, and takes it with one', async () => {
    const base = await startWithSession();
    const form = await fetch(`${base}/admin/form`, { headers: { cookie: 'session=mum' } });
    const csrfCookie = form.headers.getSetCookie().find((c) => c.startsWith('memu_csrf='))!;
    expect(csrfCookie).toMatch(/HttpOnly/);
    expect(csrfCookie).toMatch(/SameSite=Strict/);
    const { csrf } = (await form.json()) as { csrf: string };
    const cookie = `session=mum; ${csrfCookie.split(';')[0]}`;
    const post = (body: string, extra: Record<string, string> = {}) =>
      fetch(`${base}/admin/form`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...extra }, body });
    expect((await post('name=x', { cookie })).status).toBe(403);
    expect((await post(`name=x&_csrf=${encodeURIComponent(csrf)}x`, { cookie })).status).toBe(403);
    expect((await post(`name=x&_csrf=${encodeURIComponent(csrf)}`, { cookie: 'session=mum' })).status).toBe(403);
    const saved = await post(`name=x&_csrf=${encodeURIComponent(csrf)}`, { cookie });
    expect(saved.status).toBe(200);
    expect(await saved.json()).toEqual({ saved: true });
  });

  it('takes a change from the API key without a CSRF token, and never from a session cookie', async () => {
    const base = await startWithSession();
    const withKey = await fetch(`${base}/admin/api/family`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` } });
    expect(withKey.status).toBe(200);
    const withSession = await fetch(`${base}/admin/api/family`, { method: 'POST', headers: { cookie: 'session=mum' } });
    expect(withSession.status).toBe(401);
  });

  it('sends a strict Content-Security-Policy and the other security headers', async () => {
    const base = await startWithSession();
    const res = await fetch(`${base}/admin/healthz`);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
  });
});
