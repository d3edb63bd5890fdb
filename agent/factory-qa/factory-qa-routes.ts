import type { FastifyPluginAsync } from 'fastify';
import type { FactoryQaState } from './factory-qa-state.ts';

/**
 * The machine API of factory QA (API key, as every route under /admin/api/):
 *
 * GET /api/factory-qa   the run's state: waiting, not-requested, running (the current step and
 *                       the checks done), done (the whole report, and whether the unit powers
 *                       off or stays on), or error (why nothing was tested)
 */
export function factoryQaRoutes(state: () => FactoryQaState): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/factory-qa', async () => state());
  };
}
