/**
 * Labels the agent puts on everything it creates. Current state is rebuilt from these
 * on every loop (nothing is stored), so they are the contract between loops and across
 * agent restarts and upgrades.
 */
export const STACK_LABEL = 'org.memu.stack';
export const SERVICE_LABEL = 'org.memu.service';
export const NETWORK_LABEL = 'org.memu.network';
export const VOLUME_LABEL = 'org.memu.volume';
export const CONFIG_HASH_LABEL = 'org.memu.config-hash';

/** A Docker label filter selecting everything belonging to one stack. */
export function stackFilter(project: string): { label: string[] } {
  return { label: [`${STACK_LABEL}=${project}`] };
}
