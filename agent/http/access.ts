import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, onRequestHookHandler, preHandlerHookHandler } from 'fastify';
import { AGENT_ROUTE_PREFIX, apiKeyDigest } from '../../shared/contracts/agent-api.ts';

/**
 * Who may use a route:
 *   public   anyone (the liveness answer, the login page, the wizard's claim step);
 *   api-key  machines with `Authorization: Bearer <agentApiKey>` (fleet tools, the factory,
 *            tests), never cookies, so a browser cannot be tricked into using it;
 *   admin    a person signed in as the family's admin (a session cookie).
 * Routes under /admin/api/ default to api-key, every other route to admin.
 */
export type RouteAccess = 'public' | 'api-key' | 'admin';

/** The SHA-256 (hex) of the one API key the device accepts, or undefined when it has none. */
export type ApiKeyDigest = () => Promise<string | undefined>;

export interface AdminPrincipal {
  username: string;
  displayName: string;
  /** SHA-256 of the session's token: what signing out and revoking name. */
  sessionIdHash: string;
}

/** Where a page request must go instead (the setup wizard, until setup is finished), or undefined. */
export type PageGate = (request: FastifyRequest) => string | undefined;

/** The admin behind a request's session cookie, if it is a live session. */
export interface SessionResolver {
  adminFor(request: FastifyRequest, reply: FastifyReply): Promise<AdminPrincipal | undefined>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** Set for requests with a live admin session (any access level). */
    admin?: AdminPrincipal;
  }
}

export function routeAccess(request: FastifyRequest): RouteAccess {
  const declared = request.routeOptions.config?.access;
  if (declared) return declared;
  return (request.routeOptions.url ?? request.url).startsWith(`${AGENT_ROUTE_PREFIX}/api/`) ? 'api-key' : 'admin';
}

/**
 * fastify's onRequest hook: resolves the session (for every route, so public pages know
 * who is signed in) and refuses what the route's access does not allow. Unknown paths
 * count as admin routes, so they reveal nothing to strangers.
 */
export function authenticate(opts: { apiKeyDigest: ApiKeyDigest; sessions?: SessionResolver; pageGate?: PageGate }): onRequestHookHandler {
  return async (request, reply) => {
    const access = routeAccess(request);
    if (access !== 'api-key' && request.method === 'GET' && opts.pageGate) {
      const elsewhere = opts.pageGate(request);
      if (elsewhere && elsewhere !== request.url.split('?')[0]) {
        await reply.redirect(elsewhere, 303);
        return;
      }
    }
    if (access === 'api-key') {
      const presented = /^Bearer ([^\s]+)$/.exec(request.headers.authorization ?? '')?.[1];
      const expected = await opts.apiKeyDigest();
      if (presented && expected && digestsEqual(apiKeyDigest(presented), expected)) return;
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="memu-agent"')
        .send({ error: expected ? 'this needs the API key: Authorization: Bearer <key>' : 'this device has no API key (set agentApiKey in the preseed)' });
      return;
    }
    request.admin = await opts.sessions?.adminFor(request, reply);
    if (access === 'public' || request.admin) return;
    if (request.method === 'GET' && request.headers.accept?.includes('text/html')) {
      await reply.redirect(`${AGENT_ROUTE_PREFIX}/login?next=${encodeURIComponent(request.url)}`, 303);
      return;
    }
    await reply.code(401).send({ error: 'sign in as the admin first' });
  };
}

/**
 * fastify's preHandler hook (the body is parsed by then): every state-changing request a
 * browser can make carries the CSRF token of @fastify/csrf-protection. API-key requests
 * cannot come from a browser's cookies, so they need none.
 */
export function requireCsrfToken(csrfProtection: preHandlerHookHandler): preHandlerHookHandler {
  return function (request, reply, done) {
    if (['GET', 'HEAD', 'OPTIONS'].includes(request.method) || routeAccess(request) === 'api-key') return done();
    return csrfProtection.call(this, request, reply, done);
  };
}

function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b.trim().toLowerCase(), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
