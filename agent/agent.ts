import type { Logger } from 'pino';
import type { AgentConfig } from './config.ts';
import { createHealthModule, type HealthModule } from './health/index.ts';
import { createHttpModule, type HttpModule } from './http/index.ts';
import type { AgentModule } from './module.ts';
import { agentApiKeyDigest, createProvisioningModule, type ProvisioningModule } from './provisioning/index.ts';
import { createStackModule, type StackModule, type StackModuleOptions } from './stack/index.ts';

export interface Agent {
  start(): Promise<void>;
  stop(): Promise<void>;
  stack: StackModule;
  provisioning: ProvisioningModule;
  health: HealthModule;
  http: HttpModule;
}

/**
 * Builds the agent's modules in dependency order, each handed the interfaces it needs,
 * and starts them in that order (stopped in reverse):
 *
 *   stack         finds the installed stack; idle until provisioning is done
 *   provisioning  first boot, with the stack's bring-up as one of its steps
 *   health        the liveness answer and the health report, from what every module reports
 *   http          serves every module's routes behind the API key, on loopback, and on
 *                 the Docker bridge (where the front door reaches it) once Docker answers
 */
export function createAgent(config: AgentConfig, log: Logger, tuning: { stack?: StackModuleOptions['tuning'] } = {}): Agent {
  const stack = createStackModule(
    { stackDir: config.stackDir, dataDir: config.dataDir, dockerSocket: config.dockerSocket, tuning: tuning.stack },
    log.child({ module: 'stack' }),
  );
  const provisioning = createProvisioningModule(config, log.child({ module: 'provisioning' }), {
    stackSteps: [{ name: 'bring-stack-up', run: (stepLog) => stack.bringUp(stepLog) }],
  });
  const health = createHealthModule({ version: config.version, dataDir: config.dataDir, sources: [provisioning.health, stack.health] }, log.child({ module: 'health' }));
  const beforeHttp: AgentModule[] = [stack, provisioning, health];
  const http = createHttpModule(
    {
      listenHosts: config.listenHosts,
      port: config.port,
      routes: beforeHttp.flatMap((m) => (m.routes ? [m.routes] : [])),
      apiKeyDigest: () => agentApiKeyDigest(config.dataDir),
    },
    log.child({ module: 'http' }),
  );
  const modules: AgentModule[] = [...beforeHttp, http];
  const started: AgentModule[] = [];
  let stopping = false;
  return {
    stack,
    provisioning,
    health,
    http,
    async start() {
      for (const m of modules) {
        log.debug({ module: m.name }, 'starting module');
        await m.start();
        started.push(m);
      }
      // The loop keeps the stack the way first boot brought it up, so it starts only then.
      void provisioning.done().then(() => stack.startLoop());
      if (config.listenOnDockerBridge) {
        void stack
          .dockerBridgeGateway()
          .then((gateway) => http.listenAlso(gateway))
          .catch((err: unknown) => {
            if (!stopping) log.error({ err }, 'cannot listen on the Docker bridge: the front door cannot reach the agent');
          });
      }
    },
    async stop() {
      stopping = true;
      for (const m of started.reverse()) {
        await m.stop().catch((err: unknown) => log.error({ err, module: m.name }, 'module failed to stop'));
      }
    },
  };
}
