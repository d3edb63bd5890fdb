import { createAgent } from './agent.ts';
import { healthCommand } from './health/index.ts';
import { loadAgentConfig } from './config.ts';
import { createAgentLogger } from './log.ts';
import { notifySystemd } from './systemd-notify.ts';
import { raucBootBackendCommand } from './updates/index.ts';

/**
 * memu-agent: one process under systemd (memu-agent.service); `memu-agent health` prints its
 * latest health report; `memu-agent rauc-boot-backend ...` is RAUC's boot loader backend
 * (/usr/lib/memu/rauc-boot-backend, agent/updates/rauc-boot-backend.ts).
 */
if (process.argv[2] === 'health') process.exit(await healthCommand(process.argv.slice(3), loadAgentConfig().healthSnapshotPath));
if (process.argv[2] === 'rauc-boot-backend') process.exit(await raucBootBackendCommand(process.argv.slice(3)));
if (process.argv[2] !== undefined) {
  console.error(`memu-agent: unknown command "${process.argv[2]}". Commands: health [--json], rauc-boot-backend (run by RAUC). Without a command it runs the agent (as memu-agent.service does).`);
  process.exit(64);
}
// Everything above (the whole bundle's top-level code) has run: how long loading took.
const loadedAfterSeconds = Math.round(process.uptime() * 1000) / 1000;
const log = createAgentLogger();
const config = loadAgentConfig();
const agent = createAgent(config, log);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'stopping');
  await notifySystemd('STOPPING=1');
  await agent.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

try {
  await agent.start();
  log.info({ version: config.version, listening: agent.http.addresses(), loadedAfterSeconds, startedAfterSeconds: Math.round(process.uptime() * 1000) / 1000 }, 'memu-agent started');
  await notifySystemd('READY=1', 'serving');
} catch (err) {
  log.fatal({ err }, 'memu-agent failed to start');
  process.exit(1);
}
