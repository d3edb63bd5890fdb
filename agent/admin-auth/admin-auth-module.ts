import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import type { FamilyDb } from '../family-db/index.ts';
import type { SessionResolver } from '../http/index.ts';
import type { AgentModule } from '../module.ts';
import { AttemptLimiter, type LimitPolicy } from './attempt-limiter.ts';
import { loginRoutes } from './login-routes.ts';
import { Sessions } from './sessions.ts';

/**
 * Rate limits (README, "The setup wizard"): per client, 5 free failures per 15 minutes,
 * then doubling waits up to 15 minutes, locked after 30; per admin username the same; the
 * claim code also has a global budget of 20 failures per 10 minutes across all clients,
 * so many addresses together still get no further than 2 880 guesses a day.
 */
export const LIMIT_POLICIES: Record<string, LimitPolicy> = {
  'login-client': { windowMs: 15 * 60_000, free: 5, maxDelayMs: 15 * 60_000, ceiling: 30 },
  'login-user': { windowMs: 15 * 60_000, free: 5, maxDelayMs: 15 * 60_000, ceiling: 30 },
  'claim-client': { windowMs: 15 * 60_000, free: 5, maxDelayMs: 15 * 60_000, ceiling: 30 },
  'claim-global': { windowMs: 10 * 60_000, free: 10, maxDelayMs: 60_000, ceiling: 20 },
};

export interface AdminAuthModule extends AgentModule {
  /** For the http module: the admin behind a request's session cookie. */
  readonly sessionResolver: SessionResolver;
  readonly sessions: Sessions;
  /** Failed tries at secrets (sign-in, the claim code), with growing delays. */
  readonly limiter: AttemptLimiter;
  readonly routes: FastifyPluginAsync;
}

/** The family's admin signing in: sessions, sign-in and sign-out pages, rate limits. */
export function createAdminAuthModule(opts: { db: () => FamilyDb; now?: () => number }, log: Logger): AdminAuthModule {
  const sessions = new Sessions(opts.db, opts.now);
  const limiter = new AttemptLimiter(opts.db, LIMIT_POLICIES, opts.now);
  return {
    name: 'admin-auth',
    async start() {
      log.debug('admin sign-in ready');
    },
    async stop() {},
    sessions,
    limiter,
    sessionResolver: { adminFor: async (request) => sessions.adminFor(request) },
    routes: loginRoutes({ db: opts.db, sessions, limiter }),
  };
}
