import type { FastifyPluginAsync } from 'fastify';
import { AGENT_HEALTH_PATH, AGENT_LIVENESS_PATH, AGENT_METRICS_PATH, AGENT_ROUTE_PREFIX, type HealthStatus, type LivenessAnswer } from '../../shared/contracts/agent-api.ts';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus-text.ts';

/** Paths below the prefix the http module mounts every route under. */
const underPrefix = (path: string) => path.slice(AGENT_ROUTE_PREFIX.length);

/**
 * AGENT_LIVENESS_PATH: the one answer without the API key, for the front door, systemd and
 * `memu vm`: only the status word, nothing that names the device or its problems.
 * AGENT_HEALTH_PATH: the whole report with every check and the recent history, for the
 * dashboard and the fleet. AGENT_METRICS_PATH: the same in Prometheus' text format.
 */
export function healthRoutes(health: { report(): Promise<object>; status(): Promise<HealthStatus>; metrics(): Promise<string> }): FastifyPluginAsync {
  return async (app) => {
    app.get(underPrefix(AGENT_LIVENESS_PATH), { config: { access: 'public' } }, async (): Promise<LivenessAnswer> => ({ status: await health.status() }));
    app.get(underPrefix(AGENT_HEALTH_PATH), { config: { access: 'api-key' } }, () => health.report());
    app.get(underPrefix(AGENT_METRICS_PATH), { config: { access: 'api-key' } }, async (_request, reply) => reply.type(PROMETHEUS_CONTENT_TYPE).send(await health.metrics()));
  };
}
