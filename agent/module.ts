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
