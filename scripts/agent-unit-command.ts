import { readFile } from 'node:fs/promises';

/** How memu-agent.service starts the agent, for benchmarks that start it (or a bare node) the same way. */
export interface AgentUnitCommand {
  /** node's flags before the bundle on the unit's ExecStart line. */
  nodeFlags: string[];
  /** The unit's GLIBC_TUNABLES, if it sets them. */
  glibcTunables?: string;
}

export async function readAgentUnitCommand(): Promise<AgentUnitCommand> {
  const unit = await readFile(new URL('../overlays/common/etc/systemd/system/memu-agent.service', import.meta.url), 'utf8');
  const exec = /^ExecStart=\/usr\/bin\/node (.*) \/usr\/lib\/memu\/agent\/memu-agent\.mjs$/m.exec(unit);
  if (!exec) throw new Error("cannot find the agent's ExecStart line in memu-agent.service");
  return { nodeFlags: exec[1]!.split(' '), glibcTunables: /^Environment=GLIBC_TUNABLES=(.*)$/m.exec(unit)?.[1] };
}
