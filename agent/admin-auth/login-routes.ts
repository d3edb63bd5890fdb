import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { recordAudit } from '../audit-log/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import { errorBox, html, page } from '../web-pages/index.ts';
import { passwordMatches } from './admins.ts';
import type { AttemptLimiter, LimitKey } from './attempt-limiter.ts';
import type { Sessions } from './sessions.ts';

interface LoginDeps {
  db: () => FamilyDb;
  sessions: Sessions;
  limiter: AttemptLimiter;
}

/** Only a path of this agent's own pages is followed after signing in. */
export function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/admin\/[A-Za-z0-9/_\-?=&.%]*$/.test(next) && !next.startsWith('/admin//') ? next : '/admin/';
}

function loginPage(reply: FastifyReply, opts: { next: string; username?: string; error?: string; status?: number }): FastifyReply {
  const body = html`${errorBox(opts.error)}
<form method="post" action="/admin/login" class="card">
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
<input type="hidden" name="next" value="${opts.next}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" autocapitalize="none" required value="${opts.username ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>`;
  return reply.code(opts.status ?? 200).type('text/html; charset=utf-8').send(page({ title: 'Sign in', body }));
}

/** GET/POST /admin/login and POST /admin/logout. */
export function loginRoutes(deps: LoginDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/login', { config: { access: 'public' } }, async (request, reply) => {
      const next = safeNext((request.query as { next?: string }).next);
      if (request.admin) return reply.redirect(next, 303);
      return loginPage(reply, { next });
    });

    app.post(
      '/login',
      // A first line per address before any hashing; the limiter below adds the growing delays.
      { config: { access: 'public', rateLimit: { max: 20, timeWindow: '1 minute' } } },
      async (request, reply) => {
        const form = request.body as { username?: string; password?: string; next?: string };
        const username = (form.username ?? '').trim().toLowerCase();
        const next = safeNext(form.next);
        const keys: LimitKey[] = [
          { kind: 'login-client', key: `login:ip:${request.ip}` },
          { kind: 'login-user', key: `login:user:${username}` },
        ];
        const verdict = deps.limiter.check(keys);
        if (!verdict.allowed) {
          reply.header('retry-after', String(verdict.retryAfterSeconds));
          return loginPage(reply, { next, username, status: 429, error: `Too many wrong passwords. Wait ${verdict.retryAfterSeconds} seconds, then try again.` });
        }
        const admin = await passwordMatches(deps.db(), username, form.password ?? '');
        if (!admin) {
          deps.limiter.recordFailure(keys);
          return loginPage(reply, { next, username, status: 401, error: 'That username and password do not match. Check both and try again.' });
        }
        deps.limiter.clear(keys);
        deps.db().transaction(() => {
          deps.sessions.start(admin.username, reply, request.headers['user-agent']);
          recordAudit(deps.db(), admin.username, 'admin.sign-in', { from: request.ip });
        });
        return reply.redirect(next, 303);
      },
    );

    app.post('/logout', { config: { access: 'admin' } }, async (request, reply) => {
      const admin = request.admin!;
      deps.db().transaction(() => {
        deps.sessions.end(admin.sessionIdHash, reply);
        recordAudit(deps.db(), admin.username, 'admin.sign-out');
      });
      return reply.redirect('/admin/login', 303);
    });
  };
}
