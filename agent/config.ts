import { readFileSync } from 'node:fs';
import { STACK_INSTALL_DIR } from '../shared/contracts/stack-files.ts';

/** Agent settings, from the environment (systemd unit / /etc/memu/agent.env) with defaults. */
export interface AgentConfig {
  version: string;
  port: number;
  listenHost: string;
  /** Mount point of the data partition; provisioning state lives here, not on a root slot. */
  dataDir: string;
  layoutPath: string;
  /** Where /sys/class/block and /dev/disk/by-partuuid live; tests point these elsewhere. */
  sysBlockDir: string;
  devDir: string;
  stackDir: string;
  dockerSocket: string;
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
  const port = Number(env.MEMU_AGENT_PORT ?? 8080);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error(`MEMU_AGENT_PORT must be a TCP port number, got "${env.MEMU_AGENT_PORT}"`);
  }
  return {
    version: agentVersion(),
    port,
    listenHost: env.MEMU_AGENT_HOST ?? '0.0.0.0',
    dataDir: env.MEMU_DATA_DIR ?? '/var/lib/memu',
    layoutPath: env.MEMU_LAYOUT_PATH ?? '/etc/memu/layout.json',
    sysBlockDir: env.MEMU_SYS_BLOCK_DIR ?? '/sys/class/block',
    devDir: env.MEMU_DEV_DIR ?? '/dev',
    stackDir: env.MEMU_STACK_DIR ?? STACK_INSTALL_DIR,
    dockerSocket: env.MEMU_DOCKER_SOCKET ?? '/var/run/docker.sock',
  };
}
