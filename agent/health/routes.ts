import type { FastifyPluginAsync } from 'fastify';

/** `GET /healthz`: liveness plus what a person or the fleet needs to know at a glance. */
export function healthRoutes(health: { report(): Promise<object> }): FastifyPluginAsync {
  return async (app) => {
    app.get('/healthz', () => health.report());
  };
}
