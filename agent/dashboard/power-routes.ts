import type { FastifyPluginAsync } from 'fastify';
import { errorBox, html } from '../web-pages/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { confirmed, sendConfirmPage, sendPage } from './dashboard-page.ts';

/**
 * GET  /admin/power             restart and shut down
 * GET  /admin/power/restart     asks before restarting       POST: restarts the device
 * GET  /admin/power/shutdown    asks before shutting down    POST: powers it off
 */
const ACTIONS = {
  restart: {
    label: 'Restart',
    audit: 'power.restart',
    question: 'Restart Memu?',
    explanation: 'Memu stops every app, restarts, and starts them again: chat and photos are away for about two minutes. Nothing is lost.',
    underway: 'Memu is restarting. This page reloads until the dashboard is back, in about two minutes.',
  },
  shutdown: {
    label: 'Shut down',
    audit: 'power.shutdown',
    question: 'Shut Memu down?',
    explanation: 'Memu stops every app and switches off. Chat and photos are away until someone unplugs it and plugs it in again, or presses its power button.',
    underway: 'Memu is shutting down. Wait a minute, until its light goes out, before unplugging it.',
  },
} as const;
type PowerAction = keyof typeof ACTIONS;

export function powerRoutes(ctx: DashboardContext): FastifyPluginAsync {
  let underway: { action: PowerAction; error?: string } | undefined;

  return async (app) => {
    app.get('/power', async (request, reply) => {
      const status = underway
        ? underway.error
          ? errorBox(`${ACTIONS[underway.action].label} failed: ${underway.error}. Try again; if it fails again, unplug the device for ten seconds.`)
          : html`<div class="notice" role="status">${ACTIONS[underway.action].underway}</div>`
        : '';
      const body = html`${ctx.notices.take(request)}${status}
<div class="grid">
<section class="card"><h2>Restart</h2><p>Stops and starts everything again: the first thing to try when something misbehaves.</p><a class="button secondary" href="/admin/power/restart">Restart&hellip;</a></section>
<section class="card"><h2>Shut down</h2><p>Switches Memu off, before moving or unplugging it.</p><a class="button secondary" href="/admin/power/shutdown">Shut down&hellip;</a></section>
</div>`;
      const reloading = underway?.action === 'restart' && !underway.error;
      return sendPage(request, reply, { section: 'power', title: 'Power', body, refreshSeconds: reloading ? 15 : undefined });
    });

    for (const action of Object.keys(ACTIONS) as PowerAction[]) {
      const words = ACTIONS[action];
      app.get(`/power/${action}`, async (request, reply) =>
        sendConfirmPage(request, reply, {
          section: 'power',
          title: words.question,
          explanation: words.explanation,
          action: `/admin/power/${action}`,
          button: `${words.label} now`,
          danger: true,
          cancelHref: '/admin/power',
        }),
      );

      app.post(`/power/${action}`, async (request, reply) => {
        if (!confirmed(request.body)) return reply.redirect(`/admin/power/${action}`, 303);
        const actor = request.admin!.username;
        ctx.audit(actor, words.audit);
        underway = { action };
        // Once the answer is out: systemd stops the agent on the way down.
        reply.raw.once('close', () => {
          const run = action === 'restart' ? ctx.opts.power.reboot() : ctx.opts.power.powerOff();
          run.catch((err: unknown) => {
            const message = err instanceof Error ? err.message : String(err);
            ctx.log.error({ err, action }, 'the power action failed');
            underway = { action, error: message };
            try {
              ctx.audit(actor, `${words.audit}-failed`, { error: message });
            } catch {
              // Logged by audit(); the failure is shown on the power page.
            }
          });
        });
        return reply.redirect('/admin/power', 303);
      });
    }
  };
}
