import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentModule } from '../module.ts';
import { readProgress } from './wizard-progress.ts';
import { restoreStepRoutes, type RestoreStepDeps } from './restore-step.ts';
import { setupWizardRoutes, type SetupWizardDeps } from './wizard-routes.ts';

export interface SetupWizardModule extends AgentModule {
  readonly routes: FastifyPluginAsync;
  /** Until setup is finished, the wizard takes over every page of the front door. */
  pageGate(request: FastifyRequest): string | undefined;
}

/** Paths that stay reachable while setup runs. */
const OPEN_DURING_SETUP = ['/admin/setup', '/admin/assets/', '/admin/healthz', '/admin/login', '/admin/logout'];

/** The setup wizard: claim, admin, network, region, remote access, members, done (README, "The setup wizard"). */
export function createSetupWizardModule(deps: Omit<SetupWizardDeps, 'log'> & { restore: RestoreStepDeps['restore'] }, log: Logger): SetupWizardModule {
  let finished = false;
  const isFinished = () => {
    if (finished) return true;
    try {
      return (finished = readProgress(deps.db()).finished);
    } catch {
      // memu.db closed for a moment (a restore replacing it): not finished as far as anyone can tell yet.
      return false;
    }
  };
  return {
    name: 'setup-wizard',
    async start() {
      log.info({ finished: isFinished() }, isFinished() ? 'setup is finished' : 'the setup wizard is waiting for the claim code');
    },
    async stop() {},
    routes: async (app) => {
      await setupWizardRoutes({ ...deps, log })(app, {});
      await restoreStepRoutes({ db: deps.db, restore: deps.restore, log })(app, {});
    },
    pageGate(request) {
      if (isFinished()) return undefined;
      const path = request.url.split('?')[0]!;
      return OPEN_DURING_SETUP.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`)) ? undefined : '/admin/setup';
    },
  };
}
