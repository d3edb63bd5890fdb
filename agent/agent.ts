import type { Logger } from 'pino';
import type { AgentConfig } from './config.ts';
import type { AgentModule } from './module.ts';
import { createProvisioningModule, type ProvisioningModule } from './provisioning/provisioning-module.ts';
import { createHttpModule, type HttpModule } from './http/http-module.ts';
import { createStackModule, type StackModule } from './stack/stack-module.ts';

export interface Agent {
  start(): Promise<void>;
  stop(): Promise<void>;
  provisioning: ProvisioningModule;
  stack: StackModule;
  http: HttpModule;
}

/** Builds the agent's modules and starts them in a fixed order (stopped in reverse). */
export function createAgent(config: AgentConfig, log: Logger): Agent {
  // The stack waits for provisioning, and provisioning runs the stack's bring-up step:
  // each refers to the other through a function, so the start order below stays the only order.
  let provisioning: ProvisioningModule;
  const stack = createStackModule(
    { stackDir: config.stackDir, dataDir: config.dataDir, dockerSocket: config.dockerSocket, provisioned: () => provisioning.done() },
    log.child({ module: 'stack' }),
  );
  provisioning = createProvisioningModule(config, log.child({ module: 'provisioning' }), () => [
    { name: 'bring-stack-up', run: (stepLog) => stack.bringUp(stepLog) },
  ]);
  const http = createHttpModule(config, log.child({ module: 'http' }), { provisioning, stack });
  const modules: AgentModule[] = [provisioning, stack, http];
  const started: AgentModule[] = [];
  return {
    provisioning,
    stack,
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
