import { createHash } from 'node:crypto';

/**
 * The agent's HTTP API as clients outside the device see it (`memu vm`, the fleet tools,
 * tests): every route lives under `/admin/`, which the front door (nginx, port 80)
 * forwards to the agent; the agent itself listens only on loopback and the Docker bridge.
 */
export const AGENT_ROUTE_PREFIX = '/admin';
/** The one answer without the API key: `{ "status": HealthStatus }`, nothing more. */
export const AGENT_LIVENESS_PATH = `${AGENT_ROUTE_PREFIX}/healthz`;
/** The whole health report; needs `Authorization: Bearer <agentApiKey>`. */
export const AGENT_HEALTH_PATH = `${AGENT_ROUTE_PREFIX}/api/health`;
/** The agent's port on the device (loopback and the Docker bridge gateway). */
export const AGENT_DEFAULT_PORT = 8080;

/**
 * `unhealthy` when something the family notices is broken or about to break, `degraded`
 * while anything else is wrong; else `starting` while first boot is still running.
 */
export type HealthStatus = 'starting' | 'ok' | 'degraded' | 'unhealthy';
/** Prometheus text metrics (node-exporter names where they exist); needs the API key. */
export const AGENT_METRICS_PATH = `${AGENT_ROUTE_PREFIX}/api/metrics`;

export interface LivenessAnswer {
  status: HealthStatus;
}

/**
 * What the device stores of its API key, and compares a presented key with: the SHA-256
 * in hex. The key is long and random, so a fast hash is enough.
 */
export function apiKeyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}
