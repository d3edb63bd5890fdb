import type { FastifyPluginAsync } from 'fastify';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createHttpModule } from '../../../../agent/http/index.ts';

const log = pino({ level: 'silent' });

describe('the HTTP module', () => {
  it('mounts the routes it is given behind the request hook, which can refuse a request', async () => {
    const hello: FastifyPluginAsync = async (app) => {
      app.get('/hello', async () => ({ hello: 'family' }));
    };
    const other: FastifyPluginAsync = async (app) => {
      app.get('/other', async () => ({ other: true }));
    };
    const http = createHttpModule(
      {
        listenHost: '127.0.0.1',
        port: 0,
        routes: [hello, other],
        onRequest: async (request, reply) => {
          if (request.headers['x-test-key'] !== 'open') await reply.code(401).send({ error: 'who are you?' });
        },
      },
      log,
    );
    await http.start();
    try {
      const base = `http://127.0.0.1:${http.address().port}`;
      expect(await fetch(`${base}/hello`, { headers: { 'x-test-key': 'open' } }).then((r) => r.json())).toEqual({ hello: 'family' });
      expect(await fetch(`${base}/other`, { headers: { 'x-test-key': 'open' } }).then((r) => r.json())).toEqual({ other: true });
      const refused = await fetch(`${base}/other`);
      expect(refused.status).toBe(401);
      expect(await refused.json()).toEqual({ error: 'who are you?' });
    } finally {
      await http.stop();
    }
  });
});
