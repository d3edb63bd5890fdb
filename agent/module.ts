import type { Logger } from 'pino';

/**
 * One concern of the agent (umbreld's shape): started in a fixed order by `agent.ts`,
 * stopped in reverse, each with its own child logger.
 */
export interface AgentModule {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface AgentModuleContext {
  log: Logger;
}
