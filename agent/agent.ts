import type { Logger } from 'pino';
import type { AgentConfig } from './config.ts';
import type { AgentModule } from './module.ts';
import { createProvisioningModule, type ProvisioningModule } from './provisioning/provisioning-module.ts';
import { createHttpModule, type HttpModule } from './http/http-module.ts';

export interface Agent {
  start(): Promise<void>;
  stop(): Promise<void>;
  provisioning: ProvisioningModule;
  http: HttpModule;
}

/** Builds the agent's modules and starts them in a fixed order (stopped in reverse). */
export function createAgent(config: AgentConfig, log: Logger): Agent {
  const provisioning = createProvisioningModule(config, log.child({ module: 'provisioning' }));
  const http = createHttpModule(config, log.child({ module: 'http' }), { provisioning });
  const modules: AgentModule[] = [provisioning, http];
  const started: AgentModule[] = [];
  return {
    provisioning,
    http,
    async start() {
      for (const m of modules) {
        log.debug({ module: m.name }, 'starting module');
        await m.start();
        started.push(m);
      }
    },
    async stop() {
      for (const m of started.reverse()) {
        await m.stop().catch((err: unknown) => log.error({ err, module: m.name }, 'module failed to stop'));
      }
    },
  };
}
