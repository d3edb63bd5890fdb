import type { FastifyPluginAsync } from 'fastify';
import { AGENT_HEALTH_PATH, AGENT_LIVENESS_PATH, AGENT_ROUTE_PREFIX, type HealthStatus, type LivenessAnswer } from '../../shared/contracts/agent-api.ts';

/** Paths below the prefix the http module mounts every route under. */
const underPrefix = (path: string) => path.slice(AGENT_ROUTE_PREFIX.length);

/**
 * AGENT_LIVENESS_PATH: the one answer without the API key, for the front door, systemd and
 * `memu vm`: only `starting`, `ok` or `degraded`, nothing that names the device or its
 * problems. AGENT_HEALTH_PATH: the whole report, for the dashboard and the fleet.
 */
export function healthRoutes(health: { report(): Promise<object>; status(): Promise<HealthStatus> }): FastifyPluginAsync {
  return async (app) => {
    app.get(underPrefix(AGENT_LIVENESS_PATH), { config: { access: 'public' } }, async (): Promise<LivenessAnswer> => ({ status: await health.status() }));
    app.get(underPrefix(AGENT_HEALTH_PATH), () => health.report());
  };
}
