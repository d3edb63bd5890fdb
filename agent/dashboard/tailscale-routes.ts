import type { FastifyPluginAsync } from 'fastify';
import { errorBox, html, type SafeHtml } from '../web-pages/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { confirmed, csrfField, field, sendConfirmPage, sendPage } from './dashboard-page.ts';
import type { TailnetView } from './tailnet.ts';
import type { TailnetJoin } from './tailnet-joins.ts';

const STATE_WORDS: Record<string, string> = {
  Running: 'connected',
  Starting: 'connecting',
  NeedsLogin: 'not joined',
  NeedsMachineAuth: 'waiting for approval in the Tailscale admin console',
  Stopped: 'stopped',
  NoState: 'starting up',
};

function statusCard(view: TailnetView | Error): SafeHtml {
  if (view instanceof Error) {
    return html`<section class="card">${errorBox(`Tailscale could not be asked: ${view.message}.`)}<p>Tailscale runs as the memu_tailscale service: check it on the <a href="/admin/">Overview</a> and restart it there if it is not running.</p></section>`;
  }
  const tone = view.backendState === 'Running' ? 'ok' : 'warn';
  return html`<section class="card" aria-labelledby="h-ts"><h2 id="h-ts">Tailscale</h2>
<dl class="facts">
<dt>State</dt><dd><span class="${tone}">${STATE_WORDS[view.backendState] ?? view.backendState}</span></dd>
${view.tailnet ? html`<dt>Tailnet</dt><dd>${view.tailnet}</dd>` : ''}
${view.ips.length > 0 ? html`<dt>Address</dt><dd>${view.ips.map((ip, i) => html`${i > 0 ? ', ' : ''}<code>${ip}</code>`)}</dd>` : ''}
${view.dnsName ? html`<dt>Name</dt><dd><code>${view.dnsName}</code></dd>` : ''}
</dl>
${view.dnsName ? html`<p>Away from home, with Tailscale on the phone or laptop, open <code>http://${view.dnsName}</code>.</p>` : ''}
${view.health.length > 0 ? html`<ul>${view.health.map((h) => html`<li class="warn">${h}</li>`)}</ul>` : ''}
</section>`;
}

function joinOutcome(join: TailnetJoin | undefined, now: number): SafeHtml {
  if (!join) return html``;
  if (join.state === 'running') return html`<div class="notice" role="status">Joining the tailnet&hellip; (${Math.round((now - join.startedAt) / 1000)} s; this page updates itself)</div>`;
  const o = join.outcome!;
  if (o.state === 'joined') return html`<div class="notice" role="status">Joined${o.tailnet ? ` ${o.tailnet}` : ''}.</div>`;
  if (o.state === 'needs-approval') return html`<div class="notice" role="status">The key was accepted. Approve this device in the Tailscale admin console; it connects once approved.</div>`;
  return html`${errorBox(`Joining failed: ${o.reason}. Check the key (it may have expired or been used already), make a new one if needed, and try again.`)}`;
}

/**
 * GET  /admin/tailscale         remote access: tailscaled's state, IP and MagicDNS name; the join form or the leave button
 * POST /admin/tailscale/join    joins with an auth key (in the background; the page follows the join)
 * GET  /admin/tailscale/leave   asks before leaving
 * POST /admin/tailscale/leave   logs the device out of its tailnet
 */
export function tailscaleRoutes(ctx: DashboardContext): FastifyPluginAsync {
  const { tailnet } = ctx.opts;
  const status = () => tailnet.status().catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));

  return async (app) => {
    app.get('/tailscale', async (request, reply) => {
      const view = await status();
      const join = ctx.joins.latest();
      const joined = !(view instanceof Error) && (view.backendState === 'Running' || view.backendState === 'NeedsMachineAuth' || view.backendState === 'Starting');
      const body = html`${ctx.notices.take(request)}
${joinOutcome(join, ctx.now())}
${statusCard(view)}
${
  join?.state === 'running' || view instanceof Error
    ? ''
    : joined
      ? html`<section class="card"><h2>Leave</h2><p>Remote access stops until the device joins again with a new key.</p><a class="button secondary" href="/admin/tailscale/leave">Leave the tailnet&hellip;</a></section>`
      : html`<form method="post" action="/admin/tailscale/join" class="card" aria-labelledby="h-join">
<h2 id="h-join">Join a tailnet</h2>
<p>Make an auth key in the Tailscale admin console (Settings &rarr; Keys &rarr; Generate auth key), paste it here, and the device joins your tailnet. The key is handed to Tailscale and not kept.</p>
${csrfField(reply)}
${field({ name: 'authKey', label: 'Auth key', hint: 'starts with tskey-auth-', type: 'password', autocomplete: 'off', extra: html` spellcheck="false"` })}
<button type="submit">Join</button>
</form>`
}`;
      return sendPage(request, reply, { section: 'tailscale', title: 'Remote access', body, refreshSeconds: join?.state === 'running' ? 2 : undefined });
    });

    app.post('/tailscale/join', async (request, reply) => {
      const authKey = ((request.body as { authKey?: string } | undefined)?.authKey ?? '').trim();
      if (!/^tskey-[A-Za-z0-9-]{8,}$/.test(authKey)) {
        ctx.notices.add(request, { kind: 'error', text: 'That is not a Tailscale auth key: a key starts with "tskey-auth-". Copy it again from the Tailscale admin console.' });
        return reply.redirect('/admin/tailscale', 303);
      }
      const actor = request.admin!.username;
      ctx.joins.forget();
      ctx.audit(actor, 'tailscale.join');
      if (!ctx.joins.start(authKey, actor)) ctx.notices.add(request, { kind: 'ok', text: 'A join is already running.' });
      return reply.redirect('/admin/tailscale', 303);
    });

    app.get('/tailscale/leave', async (request, reply) =>
      sendConfirmPage(request, reply, {
        section: 'tailscale',
        title: 'Leave the tailnet?',
        explanation: 'The device logs out of Tailscale: it can no longer be reached from away from home until it joins again with a new auth key. At home it works as before.',
        action: '/admin/tailscale/leave',
        button: 'Leave the tailnet',
        danger: true,
        cancelHref: '/admin/tailscale',
      }),
    );

    app.post('/tailscale/leave', async (request, reply) => {
      if (!confirmed(request.body)) return reply.redirect('/admin/tailscale/leave', 303);
      const actor = request.admin!.username;
      try {
        await tailnet.leave();
        ctx.joins.forget();
        ctx.audit(actor, 'tailscale.leave');
        ctx.notices.add(request, { kind: 'ok', text: 'The device left the tailnet.' });
      } catch (err) {
        ctx.audit(actor, 'tailscale.leave-failed', { error: (err as Error).message });
        ctx.notices.add(request, { kind: 'error', text: `Leaving failed: ${(err as Error).message}. Check Tailscale on the Overview and try again.` });
      }
      return reply.redirect('/admin/tailscale', 303);
    });
  };
}
