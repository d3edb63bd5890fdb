import { readFile, statfs } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import type { AgentModule } from '../module.ts';
import { collectHealth, healthStatus, type HealthReason, type HealthSource, type HealthStatus } from './health-report.ts';
import { healthRoutes } from './routes.ts';

export interface HealthModuleOptions {
  version: string;
  /** The data partition's mount point, whose size and free space the report shows. */
  dataDir: string;
  /** The modules that report into the health report, in the order their sections appear. */
  sources: readonly HealthSource[];
  bootIdPath?: string;
}

export interface HealthBody {
  status: HealthStatus;
  reasons: HealthReason[];
  version: string;
  bootId: string;
  uptimeSeconds: number;
  [section: string]: unknown;
}

export interface HealthModule extends AgentModule {
  report(): Promise<HealthBody>;
  /** The status word alone, the liveness answer. */
  status(): Promise<HealthStatus>;
  routes: FastifyPluginAsync;
}

/** The device's health report: the agent's own facts plus what every module reports. */
export function createHealthModule(opts: HealthModuleOptions, log: Logger): HealthModule {
  let bootId = 'unknown';
  const report = async (): Promise<HealthBody> => {
    const collected = await collectHealth(opts.sources, log);
    return {
      status: healthStatus(collected),
      reasons: collected.reasons,
      version: opts.version,
      bootId,
      uptimeSeconds: Math.round(process.uptime()),
      ...collected.sections,
      data: await dataFilesystem(opts.dataDir),
      agent: { rssBytes: process.memoryUsage().rss, cpuSeconds: cpuSeconds() },
    };
  };
  const status = async (): Promise<HealthStatus> => healthStatus(await collectHealth(opts.sources, log));
  return {
    name: 'health',
    async start() {
      bootId = await readFile(opts.bootIdPath ?? '/proc/sys/kernel/random/boot_id', 'utf8').then((s) => s.trim(), () => 'unknown');
    },
    async stop() {},
    report,
    status,
    routes: healthRoutes({ report, status }),
  };
}

async function dataFilesystem(dataDir: string): Promise<{ sizeBytes: number; freeBytes: number } | undefined> {
  return statfs(dataDir).then(
    (s) => ({ sizeBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize }),
    () => undefined,
  );
}

/** CPU time the agent has used since it started (user + system), for idle-cost checks. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
