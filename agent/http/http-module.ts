import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.ts';
import type { AgentModule } from '../module.ts';
import type { ProvisioningModule } from '../provisioning/provisioning-module.ts';
import type { StackModule } from '../stack/stack-module.ts';
import { healthzRoute } from '../health/routes.ts';
import { provisioningSummary } from '../provisioning/summary.ts';

export interface HttpModule extends AgentModule {
  /** The address actually bound (port 0 in tests picks a free one). */
  address(): { host: string; port: number };
}

/** The agent's HTTP API; each concern's routes are fastify plugins beside that concern. */
export function createHttpModule(config: AgentConfig, log: Logger, deps: { provisioning: ProvisioningModule; stack: StackModule }): HttpModule {
  let app: FastifyInstance | undefined;
  let bound = { host: config.listenHost, port: config.port };
  return {
    name: 'http',
    async start() {
      const server = Fastify({ loggerInstance: log as FastifyBaseLogger });
      await server.register(healthzRoute, {
        version: config.version,
        dataDir: config.dataDir,
        device: () => provisioningSummary(config.dataDir),
        provisioning: deps.provisioning.status,
        stack: deps.stack.status,
      });
      await server.listen({ host: config.listenHost, port: config.port });
      app = server;
      const addr = server.server.address();
      if (addr && typeof addr === 'object') bound = { host: addr.address, port: addr.port };
    },
    async stop() {
      await app?.close();
    },
    address: () => bound,
  };
}
