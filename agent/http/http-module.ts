import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { AGENT_ROUTE_PREFIX } from '../../shared/contracts/agent-api.ts';
import type { AgentModule } from '../module.ts';
import { requireApiKey, type ApiKeyDigest } from './api-key.ts';

export interface HttpModuleOptions {
  /** Addresses listened on from the start: loopback on the device. */
  listenHosts: readonly string[];
  port: number;
  /** Every concern's routes (fastify plugins kept beside each concern), mounted under AGENT_ROUTE_PREFIX. */
  routes: readonly FastifyPluginAsync[];
  /**
   * The SHA-256 of the API key requests must present (`Authorization: Bearer <key>`), read
   * per request; undefined refuses every request that needs a key. Routes marked
   * `config: { public: true }` are answered without one.
   */
  apiKeyDigest: ApiKeyDigest;
}

export interface HttpModule extends AgentModule {
  /** The addresses actually bound (port 0 in tests picks a free one). */
  addresses(): { host: string; port: number }[];
  /** Listens on one more address, with the same routes and port (the docker bridge, once Docker is up). */
  listenAlso(host: string): Promise<void>;
}

/**
 * The agent's HTTP API: one fastify app behind the API-key check, served on a few chosen
 * addresses (never all interfaces: the LAN reaches the agent only through the front door).
 * fastify listens on one address, so every further address gets a plain Node server
 * handing its requests to the same app.
 */
export function createHttpModule(opts: HttpModuleOptions, log: Logger): HttpModule {
  let app: FastifyInstance | undefined;
  let route: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const servers: Server[] = [];
  const bound: { host: string; port: number }[] = [];

  const listen = async (host: string, port: number) => {
    if (!route) throw new Error('the HTTP module has not started');
    const server = createServer(route);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    servers.push(server);
    const addr = server.address();
    bound.push(addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { host, port });
    log.info({ host, port: bound.at(-1)!.port }, 'listening');
  };

  return {
    name: 'http',
    async start() {
      const server = Fastify({
        loggerInstance: log as FastifyBaseLogger,
        serverFactory: (handler) => {
          route = handler;
          return createServer(handler);
        },
      });
      // Added before the routes, so it covers every one of them.
      server.addHook('onRequest', requireApiKey(opts.apiKeyDigest));
      for (const routes of opts.routes) await server.register(routes, { prefix: AGENT_ROUTE_PREFIX });
      await server.ready();
      app = server;
      // Every address, the first one included, on its own server with the same router;
      // all share the first one's port, so port 0 in tests means one port everywhere.
      for (const host of opts.listenHosts) await listen(host, bound[0]?.port ?? opts.port);
    },
    async stop() {
      await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
      await app?.close();
    },
    addresses: () => [...bound],
    async listenAlso(host) {
      if (bound.some((b) => b.host === host)) return;
      await listen(host, bound[0]?.port ?? opts.port);
    },
  };
}
