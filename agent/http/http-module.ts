import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyFormbody from '@fastify/formbody';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { AGENT_ROUTE_PREFIX } from '../../shared/contracts/agent-api.ts';
import { createFileOnce } from '../../shared/files/durable-files.ts';
import type { AgentModule, LivenessProbe } from '../module.ts';
import { authenticate, requireCsrfToken, type ApiKeyDigest, type PageGate, type SessionResolver } from './access.ts';

export interface HttpModuleOptions {
  /** Addresses listened on from the start: loopback on the device. */
  listenHosts: readonly string[];
  port: number;
  /** Every concern's routes (fastify plugins kept beside each concern), mounted under AGENT_ROUTE_PREFIX. */
  routes: readonly FastifyPluginAsync[];
  /**
   * The SHA-256 of the API key machine clients present (`Authorization: Bearer <key>`),
   * read per request; undefined refuses every api-key route (see access.ts).
   */
  apiKeyDigest: ApiKeyDigest;
  /** Finds the admin behind a session cookie (the admin-auth module); without it no route needing an admin is served. */
  sessions?: SessionResolver;
  /** Sends page requests elsewhere first (the setup wizard takes over until setup is finished). */
  pageGate?: PageGate;
  /** Where the per-device secret that signs the CSRF cookie lives (made on first start, 0600). */
  cookieSecretPath: string;
}

export interface HttpModule extends AgentModule {
  /** The addresses actually bound (port 0 in tests picks a free one). */
  addresses(): { host: string; port: number }[];
  /** Listens on one more address, with the same routes and port (the docker bridge, once Docker is up). */
  listenAlso(host: string): Promise<void>;
  /** Alive while the loopback server listens, for the watchdog. */
  readonly liveness: LivenessProbe;
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
        // Only the front door (on the bridge) and local programs reach the agent, so the
        // client address it forwards is the one rate limits and the audit log use.
        trustProxy: true,
        serverFactory: (handler) => {
          route = handler;
          return createServer(handler);
        },
      });
      const cookieSecret = await createFileOnce(opts.cookieSecretPath, randomBytes(32).toString('base64url'), { mode: 0o600 });
      await server.register(fastifyCookie, { secret: cookieSecret.content.trim() });
      await server.register(fastifyFormbody);
      await server.register(fastifyHelmet, { contentSecurityPolicy: { directives: CONTENT_SECURITY_POLICY } });
      await server.register(fastifyCsrf, { cookieKey: 'memu_csrf', cookieOpts: { signed: true, httpOnly: true, sameSite: 'strict', path: AGENT_ROUTE_PREFIX } });
      // Per-route limits only (login, claim): a route asks with config.rateLimit.
      await server.register(fastifyRateLimit, { global: false });
      // Added before the routes, so they cover every one of them.
      server.addHook('onRequest', authenticate({ apiKeyDigest: opts.apiKeyDigest, sessions: opts.sessions, pageGate: opts.pageGate }));
      server.addHook('preHandler', requireCsrfToken(server.csrfProtection));
      server.setErrorHandler(answerError);
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
    liveness: {
      name: 'http',
      alive: () => (servers.length > 0 && servers.every((s) => s.listening)) || 'the agent\'s HTTP server is not listening',
    },
    async listenAlso(host) {
      if (bound.some((b) => b.host === host)) return;
      await listen(host, bound[0]?.port ?? opts.port);
    },
  };
}

/**
 * No script runs from anywhere but the agent itself (and the pages have none today), no
 * style from elsewhere, no framing, forms post only here. QR codes are inline SVG.
 */
const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
  objectSrc: ["'none'"],
  upgradeInsecureRequests: null,
};

/** Errors as a person can act on them: an expired form is not a crash. */
function answerError(error: FastifyError, _request: unknown, reply: import('fastify').FastifyReply): void {
  if (error.code === 'FST_CSRF_INVALID_TOKEN' || error.code === 'FST_CSRF_MISSING_SECRET') {
    void reply.code(403).send({ error: 'this form has expired or did not come from this device: reload the page and try again' });
    return;
  }
  if (error.statusCode === 429) {
    void reply.code(429).send({ error: error.message });
    return;
  }
  void reply.send(error);
}
