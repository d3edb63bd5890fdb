import type { FastifyPluginAsync } from 'fastify';
import { html } from '../web-pages/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { confirmed, sendConfirmPage, sendPage } from './dashboard-page.ts';
import { backupsCard } from './backup-page.ts';
import type { BackupDashboardSource } from './backup-routes.ts';
import { deviceCard, healthCard, placeholderCard, servicesCard, storageCard } from './overview-page.ts';

/**
 * GET  /admin/                              the overview: status, device, services, storage, backups, updates (a placeholder)
 * GET  /admin/services/:service/restart     asks before restarting a service
 * POST /admin/services/:service/restart     restarts it (in the background; the overview shows how it went)
 */
export function overviewRoutes(ctx: DashboardContext, backups?: Pick<BackupDashboardSource, 'status'>): FastifyPluginAsync {
  const serviceExists = (service: string) => {
    const status = ctx.opts.stack.status();
    return status.state === 'present' && Object.hasOwn(status.services, service);
  };
  const noSuchService = (service: string) =>
    html`<p>There is no service named <strong>${service}</strong> on this device.</p><p><a href="/admin/">Back to the overview</a></p>`;

  return async (app) => {
    app.get('/', async (request, reply) => {
      const [report, facts, fmt, backupStatus] = await Promise.all([ctx.opts.health.report(), ctx.deviceFacts(), ctx.formats(), backups?.status()]);
      const stack = ctx.opts.stack.status();
      const jobs = ctx.restarts.recent();
      const body = html`${ctx.notices.take(request)}
${healthCard(report)}
${servicesCard(stack, jobs)}
<div class="grid">
${deviceCard(facts, report, fmt)}
${storageCard(report.data as { sizeBytes: number; freeBytes: number } | undefined, ctx.storageUse(), fmt)}
${placeholderCard('updates', 'Updates', 'Installing Memu updates safely, with a way back, will be here.')}
${backupStatus ? backupsCard(backupStatus, fmt) : placeholderCard('backups', 'Backups', 'Backups are not available on this device.')}
</div>`;
      // While a restart runs, the page follows it on its own.
      return sendPage(request, reply, { section: 'overview', title: 'Overview', body, refreshSeconds: jobs.some((j) => j.state === 'running') ? 3 : undefined });
    });

    app.get<{ Params: { service: string } }>('/services/:service/restart', async (request, reply) => {
      const { service } = request.params;
      if (!serviceExists(service)) return sendPage(request, reply, { section: 'overview', title: 'No such service', body: noSuchService(service), status: 404 });
      return sendConfirmPage(request, reply, {
        section: 'overview',
        title: `Restart ${service}?`,
        explanation: `${service} stops and starts again. Whoever uses it now loses their connection for a moment (usually under a minute); nothing is lost.`,
        action: `/admin/services/${encodeURIComponent(service)}/restart`,
        button: `Restart ${service}`,
        cancelHref: '/admin/',
      });
    });

    app.post<{ Params: { service: string } }>('/services/:service/restart', async (request, reply) => {
      const { service } = request.params;
      if (!serviceExists(service)) return sendPage(request, reply, { section: 'overview', title: 'No such service', body: noSuchService(service), status: 404 });
      if (!confirmed(request.body)) return reply.redirect(`/admin/services/${encodeURIComponent(service)}/restart`, 303);
      const actor = request.admin!.username;
      ctx.audit(actor, 'service.restart', { service });
      if (!ctx.restarts.start(service, actor)) ctx.notices.add(request, { kind: 'ok', text: `${service} is already restarting.` });
      return reply.redirect('/admin/', 303);
    });
  };
}
