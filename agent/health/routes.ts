import { readFile, statfs } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { ProvisioningState } from '../provisioning/journal.ts';
import type { StackModuleStatus } from '../stack/stack-module.ts';

export interface HealthzDeps {
  version: string;
  dataDir: string;
  /** What first boot made of this device (mode, hostname, fields applied) — never secret values. */
  device: () => Promise<unknown>;
  provisioning: () => ProvisioningState;
  stack: () => StackModuleStatus;
  bootIdPath?: string;
}

/** `GET /healthz`: liveness plus what a person or the fleet needs to know at a glance. */
export const healthzRoute: FastifyPluginAsync<HealthzDeps> = async (app, deps) => {
  const bootId = await readFile(deps.bootIdPath ?? '/proc/sys/kernel/random/boot_id', 'utf8').then((s) => s.trim(), () => 'unknown');
  app.get('/healthz', async () => {
    const provisioning = deps.provisioning();
    const data = await statfs(deps.dataDir).then(
      (s) => ({ sizeBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize }),
      () => undefined,
    );
    return {
      status: provisioning.state === 'failed' ? 'degraded' : 'ok',
      version: deps.version,
      bootId,
      uptimeSeconds: Math.round(process.uptime()),
      provisioning,
      device: await deps.device().catch(() => undefined),
      data,
      stack: deps.stack(),
      agent: { rssBytes: process.memoryUsage().rss, cpuSeconds: cpuSeconds() },
    };
  });
};

/** CPU time the agent has used since it started (user + system), for idle-cost checks. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
