import type { FastifyPluginAsync } from 'fastify';
import { ASSET_PATHS } from './layout.ts';
import { PROGRESS_SCRIPT } from './progress-script.ts';
import { STYLESHEET } from './stylesheet.ts';

/**
 * The stylesheet and the progress script, served from memory: the agent is one bundled file, so its few assets
 * live in code rather than beside it (@fastify/static serves directories, which there are
 * none of). Public, cached for a day.
 */
export const webAssetRoutes: FastifyPluginAsync = async (app) => {
  app.get(ASSET_PATHS.stylesheet.slice('/admin'.length), { config: { access: 'public' } }, async (_request, reply) => {
    return reply.type('text/css; charset=utf-8').header('cache-control', 'public, max-age=86400').send(STYLESHEET);
  });
  app.get(ASSET_PATHS.progressScript.slice('/admin'.length), { config: { access: 'public' } }, async (_request, reply) => {
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'public, max-age=86400').send(PROGRESS_SCRIPT);
  });
};
