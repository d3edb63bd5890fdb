import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type onRequestHookHandler } from 'fastify';
import type { Logger } from 'pino';
import type { AgentModule } from '../module.ts';

export interface HttpModuleOptions {
  listenHost: string;
  port: number;
  /** Every concern's routes (fastify plugins kept beside each concern), mounted as given. */
  routes: readonly FastifyPluginAsync[];
  /**
   * Runs before every route (fastify's onRequest): the place where authentication hooks
   * in. It answers the request itself (e.g. 401) to refuse it.
   */
  onRequest?: onRequestHookHandler;
}

export interface HttpModule extends AgentModule {
  /** The address actually bound (port 0 in tests picks a free one). */
  address(): { host: string; port: number };
}

/** The agent's HTTP API: one server, the request hook, and the routes it is given. */
export function createHttpModule(opts: HttpModuleOptions, log: Logger): HttpModule {
  let app: FastifyInstance | undefined;
  let bound = { host: opts.listenHost, port: opts.port };
  return {
    name: 'http',
    async start() {
      const server = Fastify({ loggerInstance: log as FastifyBaseLogger });
      // Added before the routes, so it covers every one of them.
      if (opts.onRequest) server.addHook('onRequest', opts.onRequest);
      for (const routes of opts.routes) await server.register(routes);
      await server.listen({ host: opts.listenHost, port: opts.port });
      app = server;
      const addr = server.server.address();
      if (addr && typeof addr === 'object') bound = { host: addr.address, port: addr.port };
    },
    async stop() {
      await app?.close();
    },
    address: () => bound,
  };
}
