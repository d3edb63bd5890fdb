import type { FastifyPluginAsync } from 'fastify';

/**
 * One concern of the agent (umbreld's shape): built by `agent.ts` with the interfaces it
 * needs, started in a fixed order, stopped in reverse, each with its own child logger.
 */
export interface AgentModule {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The module's HTTP routes, as a fastify plugin; the http module mounts them. */
  readonly routes?: FastifyPluginAsync;
}

/**
 * Asked by the watchdog before each ping: `true` while the module does its job, else why
 * not. A module that stopped working (health rounds stalled, HTTP server closed) stops
 * the pings, and systemd restarts the agent.
 */
export interface LivenessProbe {
  readonly name: string;
  alive(now: number): true | string;
}
