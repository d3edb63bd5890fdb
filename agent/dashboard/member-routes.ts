import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceAccountResult } from '../accounts/index.ts';
import type { MemberWithAccounts } from '../family-members/index.ts';
import { errorBox, html, type SafeHtml } from '../web-pages/index.ts';
import { accountSheet, accountStateWords, canRetry, SERVICE_WORDS } from '../family-members/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { confirmed, csrfField, field, isolate, sendConfirmPage, sendPage, sendStreamedPage } from './dashboard-page.ts';

/**
 * GET  /admin/members                                the members, their accounts per app, and the form to add one
 * POST /admin/members                                adds a member and makes their accounts; the answer shows the one-time passwords once
 * POST /admin/members/:username/retry                tries again what failed; new passwords shown once
 * GET  /admin/members/:username/reset-password       asks before resetting (?service=synapse|immich)
 * POST /admin/members/:username/reset-password       sets a new one-time password, shown once
 * GET  /admin/members/:username/remove               asks before removing
 * POST /admin/members/:username/remove               removes the member's accounts, then the member
 */
type Service = ServiceAccountResult['service'];
const isService = (s: unknown): s is Service => s === 'synapse' || s === 'immich';

interface AddForm {
  displayName?: string;
  username?: string;
}

export function memberRoutes(ctx: DashboardContext): FastifyPluginAsync {
  const { members } = ctx.opts;
  const hostname = async () => (await ctx.settings())?.hostname ?? 'memu';
  const path = (username: string, action: string) => `/admin/members/${encodeURIComponent(username)}/${action}`;
  const failure = (what: string) => (err: unknown) =>
    html`${errorBox(`${what} failed: ${err instanceof Error ? err.message : String(err)}. Check the apps on the Overview, then try again.`)}`;

  const unreadable = (err: Error) => `The members could not be read: ${err.message}. Reload the page; if it stays, restart the device from Power.`;

  const retryForm = (reply: FastifyReply, member: { username: string; displayName: string }) =>
    html`<form method="post" action="${path(member.username, 'retry')}">${csrfField(reply)}<button type="submit" class="secondary">Try again for <bdi>${member.displayName}</bdi></button></form>`;

  const addForm = (reply: FastifyReply, form: AddForm = {}, problems: Partial<Record<'username' | 'displayName', string>> = {}) =>
    html`<form method="post" action="/admin/members" class="card" aria-labelledby="h-add">
<h2 id="h-add">Add a family member</h2>
${csrfField(reply)}
${field({ name: 'displayName', label: 'Name', hint: 'as the family sees it, in any script', value: form.displayName, error: problems.displayName && `The name ${problems.displayName.replace(/^the name /, '')}.`, autocomplete: 'off' })}
${field({ name: 'username', label: 'Username', hint: 'what they sign in with: lower-case letters a-z, digits, dots, dashes; it can never be changed or reused', value: form.username, error: problems.username && `The username ${problems.username.replace(/^(the username |a username )/, '')}.`, autocomplete: 'off', extra: html` autocapitalize="none" spellcheck="false"` })}
<button type="submit">Add and make their accounts</button>
</form>`;

  const memberCard = (reply: FastifyReply, m: MemberWithAccounts) =>
    html`<li class="card">
<h3><bdi>${m.displayName}</bdi> <span class="hint">${m.username}</span></h3>
<ul class="accounts">${m.accounts.map((a) => accountLine(m.username, a))}</ul>
<div class="actions">
${m.accounts.some(canRetry) ? retryForm(reply, m) : ''}
<a class="button secondary" href="${path(m.username, 'remove')}">Remove <bdi>${m.displayName}</bdi>&hellip;</a>
</div>
</li>`;

  const accountLine = (username: string, a: ServiceAccountResult) => {
    const words = SERVICE_WORDS[a.service];
    const state = accountStateWords(a);
    return html`<li><strong>${words.name}</strong>: <span class="${state.tone}">${state.text}</span>${a.login ? html` <span class="hint">${a.login}</span>` : ''}
${a.error ? html`<br><span class="hint">${a.error}</span>` : ''}
${a.state === 'created' ? html`<br><a href="${path(username, 'reset-password')}?service=${a.service}">Reset the ${words.name} password&hellip;</a>` : ''}</li>`;
  };

  const membersPage = async (request: FastifyRequest, reply: FastifyReply) => {
    let list: SafeHtml;
    try {
      const all = await members.list();
      list =
        all.length === 0
          ? html`<p>No family members yet. Add the first one below.</p>`
          : html`<h2>The family</h2><ul class="members">${all.map((m) => memberCard(reply, m))}</ul>`;
    } catch (err) {
      list = html`${errorBox(unreadable(err as Error))}`;
    }
    return sendPage(request, reply, { section: 'members', title: 'Family members', body: html`${ctx.notices.take(request)}${list}${addForm(reply)}` });
  };

  const sheetFor = async (reply: FastifyReply, member: { username: string; displayName: string }, results: ServiceAccountResult[]) =>
    accountSheet(member, results, await hostname(), retryForm(reply, member));

  /** The member as listed (a removed member is not), or why the list could not be read. */
  const findListed = async (username: string): Promise<{ member?: MemberWithAccounts; error?: Error }> => {
    try {
      return { member: (await members.list()).find((m) => m.username === username) };
    } catch (err) {
      return { error: err instanceof Error ? err : new Error(String(err)) };
    }
  };

  const notAMember = (request: FastifyRequest, reply: FastifyReply, username: string, error: Error | undefined) =>
    sendPage(request, reply, {
      section: 'members',
      title: error ? 'Members unavailable' : 'No such member',
      status: error ? 503 : 404,
      body: html`${errorBox(error ? unreadable(error) : `${username} is not a member of this family (any more).`)}<p><a href="/admin/members">Back to the members</a></p>`,
    });

  return async (app) => {
    app.get('/members', membersPage);

    app.post('/members', async (request, reply) => {
      const body = (request.body ?? {}) as AddForm;
      const form = { displayName: (body.displayName ?? '').trim(), username: (body.username ?? '').trim().toLowerCase() };
      const actor = request.admin!.username;
      return sendStreamedPage(
        request,
        reply,
        { section: 'members', title: 'Add a family member', waiting: `Making ${form.displayName ? isolate(form.displayName) : 'the member'}'s accounts on Memu Chat and Memu Memories… this takes a few seconds.` },
        async () => {
          const added = await members.add(form, actor);
          if ('problems' in added) return html`${errorBox('Check the fields marked below, then add the member again.')}${addForm(reply, form, added.problems)}`;
          return sheetFor(reply, added.member, added.accounts);
        },
        failure('Adding the member'),
      );
    });

    app.post<{ Params: { username: string } }>('/members/:username/retry', async (request, reply) => {
      const { member, error } = await findListed(request.params.username);
      if (!member) return notAMember(request, reply, request.params.username, error);
      const actor = request.admin!.username;
      return sendStreamedPage(
        request,
        reply,
        { section: 'members', title: `Accounts for ${isolate(member.displayName)}`, waiting: 'Trying again… this takes a few seconds.' },
        async () => sheetFor(reply, member, await members.retry(member.username, actor)),
        failure('Trying again'),
      );
    });

    app.get<{ Params: { username: string }; Querystring: { service?: string } }>('/members/:username/reset-password', async (request, reply) => {
      const { member, error } = await findListed(request.params.username);
      if (!member) return notAMember(request, reply, request.params.username, error);
      const service = request.query.service;
      if (!isService(service)) return reply.redirect('/admin/members', 303);
      const words = SERVICE_WORDS[service];
      return sendConfirmPage(request, reply, {
        section: 'members',
        title: `Reset ${isolate(member.displayName)}'s ${words.name} password?`,
        explanation: `${isolate(member.displayName)} gets a new one-time password for ${words.name}, shown on the next page only. The old password stops working${service === 'synapse' ? ' and every phone signed in to the chat is signed out' : ''}.`,
        action: path(member.username, 'reset-password'),
        hidden: { service },
        button: 'Reset the password',
        cancelHref: '/admin/members',
      });
    });

    app.post<{ Params: { username: string } }>('/members/:username/reset-password', async (request, reply) => {
      const { member, error } = await findListed(request.params.username);
      if (!member) return notAMember(request, reply, request.params.username, error);
      const service = (request.body as { service?: string } | undefined)?.service;
      if (!isService(service) || !confirmed(request.body)) return reply.redirect('/admin/members', 303);
      const actor = request.admin!.username;
      return sendStreamedPage(
        request,
        reply,
        { section: 'members', title: `New ${SERVICE_WORDS[service].name} password for ${isolate(member.displayName)}`, waiting: 'Setting a new password…' },
        async () => sheetFor(reply, member, [await members.resetPassword(member.username, service, actor)]),
        failure('Resetting the password'),
      );
    });

    app.get<{ Params: { username: string } }>('/members/:username/remove', async (request, reply) => {
      const { member, error } = await findListed(request.params.username);
      if (!member) return notAMember(request, reply, request.params.username, error);
      return sendConfirmPage(request, reply, {
        section: 'members',
        title: `Remove ${isolate(member.displayName)}?`,
        explanation: `${isolate(member.displayName)} can no longer sign in to Memu Chat or Memu Memories. What they wrote stays in the family's chats; Immich keeps their photos restorable for a while before deleting them. The username ${member.username} stays taken.`,
        action: path(member.username, 'remove'),
        button: `Remove ${isolate(member.displayName)}`,
        danger: true,
        cancelHref: '/admin/members',
      });
    });

    app.post<{ Params: { username: string } }>('/members/:username/remove', async (request, reply) => {
      const { member, error } = await findListed(request.params.username);
      if (!member) return notAMember(request, reply, request.params.username, error);
      if (!confirmed(request.body)) return reply.redirect(path(member.username, 'remove'), 303);
      try {
        const results = await members.remove(member.username, request.admin!.username);
        const failed = results.filter((r) => r.state !== 'removed' && r.state !== 'unavailable' && r.state !== 'pending');
        if (failed.length === 0) ctx.notices.add(request, { kind: 'ok', text: `${isolate(member.displayName)} was removed.` });
        else
          ctx.notices.add(request, {
            kind: 'error',
            text: `${isolate(member.displayName)} could not be removed everywhere: ${failed.map((r) => `${SERVICE_WORDS[r.service].name}: ${r.error ?? accountStateWords(r).text}`).join('; ')}. Try removing them again.`,
          });
      } catch (err) {
        ctx.notices.add(request, { kind: 'error', text: `Removing ${isolate(member.displayName)} failed: ${(err as Error).message}. Try again.` });
      }
      return reply.redirect('/admin/members', 303);
    });
  };
}
