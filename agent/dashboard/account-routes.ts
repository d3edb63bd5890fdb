import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { passwordMatches, prepareAdmin, SESSION_COOKIE, setAdminPassword, type LimitKey } from '../admin-auth/index.ts';
import { recordAudit } from '../audit-log/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import { errorBox, html } from '../web-pages/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { csrfField, field, sendPage } from './dashboard-page.ts';

/**
 * GET  /admin/account                        the admin's password form and live sessions
 * POST /admin/account/password               changes the password (the current one required); every other session ends
 * POST /admin/account/sign-out-everywhere    ends every session of the admin, this one included
 */
type PasswordField = 'currentPassword' | 'newPassword' | 'repeatPassword';
type PasswordProblems = Partial<Record<PasswordField, string>>;

/** "Firefox on Android" is more than a person needs from a user agent, and all they need to tell sessions apart. */
export function shortUserAgent(ua: string | null): string {
  if (!ua) return 'unknown browser';
  // Most specific first: Edge's agent also says Chrome and Safari, Android's also says Linux.
  const browser = [['Edg/', 'Edge'], ['Firefox/', 'Firefox'], ['Chrome/', 'Chrome'], ['Safari/', 'Safari']].find(([token]) => ua.includes(token!))?.[1];
  const system = [['Android', 'Android'], ['iPhone', 'iPhone'], ['iPad', 'iPad'], ['Windows', 'Windows'], ['Mac OS X', 'macOS'], ['Linux', 'Linux']].find(([token]) => ua.includes(token!))?.[1];
  if (browser || system) return [browser, system && `on ${system}`].filter(Boolean).join(' ');
  return ua.slice(0, 60);
}

export function accountRoutes(ctx: DashboardContext): FastifyPluginAsync {
  const { sessions, limiter } = ctx.opts;
  const db = () => ctx.opts.db();

  const accountPage = async (request: FastifyRequest, reply: FastifyReply, problems: PasswordProblems = {}, status = 200) => {
    const admin = request.admin!;
    const fmt = await ctx.formats();
    const live = sessions.live(admin.username);
    const failed = Object.keys(problems).length > 0;
    const body = html`${ctx.notices.take(request)}
<form method="post" action="/admin/account/password" class="card" aria-labelledby="h-password">
<h2 id="h-password">Change your password</h2>
${failed ? errorBox('The password was not changed. Check the fields marked below and try again.') : ''}
${csrfField(reply)}
${field({ name: 'currentPassword', label: 'Current password', type: 'password', autocomplete: 'current-password', error: problems.currentPassword })}
${field({ name: 'newPassword', label: 'New password', hint: 'at least 12 characters; a few words in a row are easy to remember and hard to guess', type: 'password', autocomplete: 'new-password', error: problems.newPassword })}
${field({ name: 'repeatPassword', label: 'New password again', type: 'password', autocomplete: 'new-password', error: problems.repeatPassword })}
<button type="submit">Change password</button>
<p class="hint">Every other browser signed in as you is signed out.</p>
</form>
<section class="card" aria-labelledby="h-sessions">
<h2 id="h-sessions">Where you are signed in</h2>
<ul class="sessions">${live.map(
      (s) => html`<li><strong>${shortUserAgent(s.userAgent)}</strong>${s.idHash === admin.sessionIdHash ? html` <span class="ok">(this browser)</span>` : ''}<br>
<span class="hint">signed in ${fmt.time(s.createdAt)}, last used ${fmt.time(s.lastSeenAt)}</span></li>`,
    )}</ul>
<form method="post" action="/admin/account/sign-out-everywhere">
${csrfField(reply)}
<button type="submit" class="danger">Sign out everywhere</button>
</form>
<p class="hint">Ends every session, this one too: use it if a phone or computer signed in as you was lost.</p>
</section>`;
    return sendPage(request, reply, { section: 'account', title: 'Your account', body, status });
  };

  return async (app) => {
    app.get('/account', (request, reply) => accountPage(request, reply));

    app.post('/account/password', async (request, reply) => {
      const admin = request.admin!;
      const form = (request.body ?? {}) as Partial<Record<PasswordField, string>>;
      const current = form.currentPassword ?? '';
      const next = form.newPassword ?? '';
      // Guessing the current password here counts against the same allowance as signing in.
      const keys: LimitKey[] = [{ kind: 'login-user', key: `login:user:${admin.username}` }];
      const verdict = limiter?.check(keys) ?? { allowed: true };
      if (!verdict.allowed) {
        reply.header('retry-after', String(verdict.retryAfterSeconds));
        return accountPage(request, reply, { currentPassword: `Too many wrong passwords. Wait ${verdict.retryAfterSeconds} seconds, then try again.` }, 429);
      }
      if (!(await passwordMatches(db(), admin.username, current))) {
        limiter?.recordFailure(keys);
        return accountPage(request, reply, { currentPassword: 'This is not your current password. Type it again.' }, 400);
      }
      if (next !== (form.repeatPassword ?? '')) return accountPage(request, reply, { repeatPassword: 'The two new passwords differ. Type the same one twice.' }, 400);
      if (next === current) return accountPage(request, reply, { newPassword: 'The new password is the one you have now. Choose another.' }, 400);
      const prepared = await prepareAdmin({ username: admin.username, displayName: admin.displayName, password: next, familyName: (await ctx.settings())?.familyName });
      if ('problems' in prepared) {
        const problem = prepared.problems.password ?? Object.values(prepared.problems).join('; ');
        return accountPage(request, reply, { newPassword: `The new password ${problem.replace(/^the password /, '')}.` }, 400);
      }
      limiter?.clear(keys);
      const newSession = db().transaction(() => {
        setPasswordHashOrThrow(db(), admin.username, prepared.passwordHash, ctx.now());
        // Every session ends, this one too, and this browser gets a fresh one: a stolen cookie dies with the old password.
        const ended = sessions.endAll(admin.username);
        const started = sessions.start(admin.username, reply, request.headers['user-agent']);
        recordAudit(db(), admin.username, 'admin.password-change', { otherSessionsEnded: Math.max(0, ended - 1) }, ctx.now());
        return started;
      });
      ctx.notices.addFor(newSession, { kind: 'ok', text: 'Your password was changed. Every other browser was signed out.' });
      return reply.redirect('/admin/account', 303);
    });

    app.post('/account/sign-out-everywhere', async (request, reply) => {
      const admin = request.admin!;
      db().transaction(() => {
        const ended = sessions.endAll(admin.username);
        recordAudit(db(), admin.username, 'admin.sign-out-everywhere', { sessionsEnded: ended }, ctx.now());
      });
      reply.clearCookie(SESSION_COOKIE, { path: '/admin' });
      return reply.redirect('/admin/login', 303);
    });
  };
}

function setPasswordHashOrThrow(db: FamilyDb, username: string, passwordHash: string, at: number): void {
  if (!setAdminPassword(db, username, passwordHash, at)) throw new Error(`there is no admin named ${username}`);
}
