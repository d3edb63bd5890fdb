import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { AgentModule } from '../module.ts';
import { readProgress } from './wizard-progress.ts';
import { setupWizardRoutes, type SetupWizardDeps } from './wizard-routes.ts';

export interface SetupWizardModule extends AgentModule {
  readonly routes: FastifyPluginAsync;
  /** Until setup is finished, the wizard takes over every page of the front door. */
  pageGate(request: FastifyRequest): string | undefined;
}

/** Paths that stay reachable while setup runs. */
const OPEN_DURING_SETUP = ['/admin/setup', '/admin/assets/', '/admin/healthz', '/admin/login', '/admin/logout'];

/** The setup wizard: claim, admin, network, region, remote access, members, done (README, "The setup wizard"). */
export function createSetupWizardModule(deps: Omit<SetupWizardDeps, 'log'>, log: Logger): SetupWizardModule {
  let finished = false;
  const isFinished = () => finished || (finished = readProgress(deps.db()).finished);
  return {
    name: 'setup-wizard',
    async start() {
      log.info({ finished: isFinished() }, isFinished() ? 'setup is finished' : 'the setup wizard is waiting for the claim code');
    },
    async stop() {},
    routes: setupWizardRoutes({ ...deps, log }),
    pageGate(request) {
      if (isFinished()) return undefined;
      const path = request.url.split('?')[0]!;
      return OPEN_DURING_SETUP.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`)) ? undefined : '/admin/setup';
    },
  };
}
