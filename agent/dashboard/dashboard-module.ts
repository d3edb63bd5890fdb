import { setTimeout as delay } from 'node:timers/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { recordAudit } from '../audit-log/index.ts';
import { readStoredSettings } from '../device-settings/index.ts';
import type { AgentModule } from '../module.ts';
import { accountRoutes } from './account-routes.ts';
import { auditRoutes } from './audit-routes.ts';
import { backupRoutes, backupsUnavailableRoutes, type BackupDashboardSource } from './backup-routes.ts';
import type { DashboardContext, DashboardOptions } from './dashboard-context.ts';
import { Notices } from './dashboard-page.ts';
import { createDeviceFacts } from './device-facts.ts';
import { familyFormats } from './format.ts';
import { memberRoutes } from './member-routes.ts';
import { overviewRoutes } from './overview-routes.ts';
import { powerRoutes } from './power-routes.ts';
import { ServiceRestarts } from './service-restarts.ts';
import { createStorageUse } from './storage-use.ts';
import { TailnetJoins } from './tailnet-joins.ts';
import { tailscaleRoutes } from './tailscale-routes.ts';

export type { DashboardOptions } from './dashboard-context.ts';

export interface DashboardModule extends AgentModule {
  readonly routes: FastifyPluginAsync;
}

/**
 * The admin's dashboard under /admin/: overview (device, services, storage), members,
 * remote access, the admin's own account, power, and the audit log. Server-rendered
 * pages with forms only (no script); every page needs the admin's session and every form
 * the CSRF token (the http module's hooks), every action is written to the audit log.
 */
export function createDashboardModule(opts: DashboardOptions & { /** The backup service; without it there is no Backups page. */ backups?: BackupDashboardSource }, log: Logger): DashboardModule {
  const now = opts.now ?? Date.now;
  const audit = (actor: string, action: string, detail: Record<string, unknown> = {}) => {
    try {
      opts.db().transaction(() => recordAudit(opts.db(), actor, action, detail, now()));
    } catch (err) {
      log.error({ err, action }, 'could not write the audit log');
      throw err;
    }
  };
  const settings = () => readStoredSettings(opts.dataDir);
  const ctx: DashboardContext = {
    opts,
    log,
    now,
    notices: new Notices(),
    restarts: new ServiceRestarts(
      (service) => opts.stack.restartService(service),
      (job) => {
        if (job.state === 'failed') log.warn({ service: job.service, error: job.error }, 'restarting a service failed');
        try {
          audit(job.actor, job.state === 'done' ? 'service.restarted' : 'service.restart-failed', { service: job.service, ...(job.error ? { error: job.error } : {}) });
        } catch {
          // Logged by audit(); the restart's outcome is still shown on the overview.
        }
      },
      now,
    ),
    joins: new TailnetJoins(opts.tailnet, audit, log, now),
    deviceFacts: createDeviceFacts(opts.deviceRoot),
    storageUse: createStorageUse({ dataDir: opts.dataDir, log, now, measure: opts.measureStorage }).current,
    settings,
    formats: async () => familyFormats(await settings()),
    audit,
  };
  return {
    name: 'dashboard',
    async start() {
      log.debug('dashboard ready');
    },
    async stop() {
      // Background work the admin started gets a few seconds to finish and record its
      // outcome before memu.db closes; a join may take 90 s, longer than a stop should.
      await Promise.race([Promise.all([ctx.restarts.settled(), ctx.joins.settled()]), delay(5_000, undefined, { ref: false })]);
    },
    routes: async (app) => {
      await app.register(overviewRoutes(ctx, opts.backups));
      await app.register(memberRoutes(ctx));
      await app.register(tailscaleRoutes(ctx));
      await app.register(opts.backups ? backupRoutes(ctx, opts.backups) : backupsUnavailableRoutes());
      await app.register(accountRoutes(ctx));
      await app.register(powerRoutes(ctx));
      await app.register(auditRoutes(ctx));
    },
  };
}
