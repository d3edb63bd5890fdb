import { readFileSync } from 'node:fs';
import { AGENT_DEFAULT_PORT } from '../shared/contracts/agent-api.ts';
import { STACK_INSTALL_DIR } from '../shared/contracts/stack-files.ts';

/** Agent settings, from the environment (systemd unit / /etc/memu/agent.env) with defaults. */
export interface AgentConfig {
  version: string;
  port: number;
  /** Addresses listened on from the start (MEMU_AGENT_LISTEN, comma-separated): loopback. */
  listenHosts: string[];
  /**
   * Also listen on the Docker bridge's gateway once Docker answers: the address the front
   * door reaches as host.docker.internal (host-gateway). Never all interfaces: the LAN
   * reaches the agent only through the front door.
   */
  listenOnDockerBridge: boolean;
  /** Mount point of the data partition; provisioning state lives here, not on a root slot. */
  dataDir: string;
  layoutPath: string;
  /** Where /sys/class/block and /dev/disk/by-partuuid live; tests point these elsewhere. */
  sysBlockDir: string;
  devDir: string;
  stackDir: string;
  dockerSocket: string;
  /** Immich's port on the host (the stack's MEMU_PHOTOS_PORT). */
  photosPort: number;
  /** The latest health report, for `memu-agent health` (MEMU_HEALTH_SNAPSHOT). */
  healthSnapshotPath: string;
}

/** Replaced by the bundler with the release version; the dev entry reads package.json. */
declare const __MEMU_AGENT_VERSION__: string | undefined;

function agentVersion(): string {
  if (typeof __MEMU_AGENT_VERSION__ === 'string') return __MEMU_AGENT_VERSION__;
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    return `${pkg.version}-dev`;
  } catch {
    return 'unknown';
  }
}

export function loadAgentConfig(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  const port = Number(env.MEMU_AGENT_PORT ?? AGENT_DEFAULT_PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`MEMU_AGENT_PORT must be a TCP port number, got "${env.MEMU_AGENT_PORT}"`);
  }
  return {
    version: agentVersion(),
    port,
    listenHosts: (env.MEMU_AGENT_LISTEN ?? '127.0.0.1').split(',').map((h) => h.trim()).filter(Boolean),
    listenOnDockerBridge: env.MEMU_AGENT_DOCKER_BRIDGE !== '0',
    dataDir: env.MEMU_DATA_DIR ?? '/var/lib/memu',
    layoutPath: env.MEMU_LAYOUT_PATH ?? '/etc/memu/layout.json',
    sysBlockDir: env.MEMU_SYS_BLOCK_DIR ?? '/sys/class/block',
    devDir: env.MEMU_DEV_DIR ?? '/dev',
    stackDir: env.MEMU_STACK_DIR ?? STACK_INSTALL_DIR,
    dockerSocket: env.MEMU_DOCKER_SOCKET ?? '/var/run/docker.sock',
    photosPort: Number(env.MEMU_PHOTOS_PORT ?? 2283),
    healthSnapshotPath: env.MEMU_HEALTH_SNAPSHOT ?? '/run/memu/health.json',
  };
}
