import { readFile, statfs } from 'node:fs/promises';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import type { AgentModule, LivenessProbe } from '../module.ts';
import type { CheckStatus, HealthCheck, Metric } from './checks/check.ts';
import { emptyHistory, healthHistory, loadHealthHistory, type HealthHistory } from './health-history.ts';
import { createHealthMonitor, HEALTH_ROUND_INTERVAL_MS, type HealthMonitor, type MonitoredResult, type RoundListener } from './health-monitor.ts';
import { createRepairer, type Repair } from './repairs/index.ts';
import { collectHealth, healthStatus, type HealthBody, type HealthReason, type HealthReport, type HealthSource, type HealthStatus } from './health-report.ts';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import type { BootRecord } from './checks/previous-boot.ts';
import { writeHealthSnapshot } from './health-snapshot.ts';
import { renderPrometheusText } from './prometheus-text.ts';
import { healthRoutes } from './routes.ts';

export interface HealthModuleOptions {
  version: string;
  /** The data partition's mount point, whose size and free space the report shows. */
  dataDir: string;
  /** The modules that report into the health report, in the order their sections appear. */
  sources: readonly HealthSource[];
  /** The device's named checks (disk, memory, temperature…), run on their own intervals. */
  checks?: readonly HealthCheck[];
  /**
   * Where the checks' statuses and the repairs' attempts are kept across restarts and
   * reboots (health-history.ts); in memory only without it.
   */
  historyPath?: string;
  /** What the box repairs on its own, in the order a round tries them (repairs/). */
  repairs?: readonly Repair[];
  /** Repairs wait for this (first boot's provisioning: a slow first Docker start is not a hung one). */
  repairsFrom?: Promise<void>;
  bootIdPath?: string;
  /** Where the latest report is written after every round, for `memu-agent health` (health-snapshot.ts). */
  snapshotPath?: string;
  /** The record of this device's boots: marked clean when the agent is stopped for a system shutdown. */
  bootRecord?: Pick<BootRecord, 'markCleanShutdown'>;
  /** Whether systemd is shutting the system down; `systemctl is-system-running` says `stopping`. */
  systemStopping?: () => Promise<boolean>;
}

export interface HealthModule extends AgentModule {
  report(): Promise<HealthBody>;
  /** The status word alone, the liveness answer. */
  status(): Promise<HealthStatus>;
  /** Every check's metrics and the agent's own, in Prometheus' text format. */
  metrics(): Promise<string>;
  /** Runs every check now (the CLI's `health --now`, tests). */
  checkNow(): Promise<void>;
  /** Alive while the health rounds keep coming, for the watchdog. */
  readonly liveness: LivenessProbe;
  routes: FastifyPluginAsync;
}

/**
 * The device's health: what every module reports (provisioning, the stack) plus the
 * named checks the monitor runs, merged into one status with its reasons. A check that is
 * not ok is a reason; it carries since when, and what the owner should do.
 */
export function createHealthModule(opts: HealthModuleOptions, log: Logger): HealthModule {
  let bootId = 'unknown';
  let startedAt = Date.now();
  const snapshot: RoundListener = {
    afterRound: async (_results, now) => {
      if (opts.snapshotPath) await writeHealthSnapshot(opts.snapshotPath, await report(), now);
    },
  };
  // Built in start(), once the persisted history is read: "since" and the repairs' limits come from it.
  let history: HealthHistory | undefined;
  let monitor: HealthMonitor | undefined;
  const results = () => monitor?.results() ?? [];
  const checkSource: HealthSource = {
    name: 'health',
    report: (): HealthReport => ({
      sections: {},
      reasons: results()
        .filter((r) => r.status !== 'ok')
        .map((r) => checkReason(r)),
      // Before the first round has finished nothing is known yet.
      starting: (opts.checks?.length ?? 0) > 0 && monitor?.lastRoundAt() === undefined,
    }),
  };
  const sources = [...opts.sources, checkSource];
  const report = async (): Promise<HealthBody> => {
    const collected = await collectHealth(sources, log);
    return {
      status: healthStatus(collected),
      reasons: collected.reasons,
      version: opts.version,
      bootId,
      uptimeSeconds: Math.round(process.uptime()),
      checks: results().map(({ metrics: _metrics, ...rest }) => rest),
      ...collected.sections,
      data: await dataFilesystem(opts.dataDir),
      agent: agentFacts(),
      history: history?.events(50) ?? [],
    };
  };
  // The agent's own cost, split so a growing part can be told apart (V8's heap, memory outside it such as SQLite's WebAssembly).
  const agentFacts = () => {
    const m = process.memoryUsage();
    return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, cpuSeconds: cpuSeconds(), healthRounds: roundCost() };
  };
  const status = async (): Promise<HealthStatus> => healthStatus(await collectHealth(sources, log));
  // For the budgets: checks' CPU, and how soon after the agent started the first answer was complete.
  const roundCost = () => {
    if (!monitor) return undefined;
    const { rounds, cpuSeconds: cpu, firstRoundEndedAt } = monitor.cost();
    const processStart = Date.now() - process.uptime() * 1000;
    return { rounds, cpuSeconds: cpu, ...(firstRoundEndedAt !== undefined ? { firstAfterStartSeconds: (firstRoundEndedAt - processStart) / 1000 } : {}) };
  };
  const metrics = async (): Promise<string> => {
    const collected = await collectHealth(sources, log);
    const latest = results();
    return renderPrometheusText([...latest.flatMap((r) => r.metrics), ...(collected.metrics ?? []), ...statusMetrics(healthStatus(collected), latest), ...agentMetrics()]);
  };
  // The rounds stalling (a check hanging forever) is the agent no longer watching the box.
  const liveness: LivenessProbe = {
    name: 'health-rounds',
    alive: (now) => {
      const last = monitor?.lastRoundAt() ?? startedAt;
      const limit = HEALTH_ROUND_INTERVAL_MS * 8;
      return now - last <= limit || `no health round has finished for ${Math.round((now - last) / 1000)} s`;
    },
  };
  return {
    name: 'health',
    async start() {
      startedAt = Date.now();
      bootId = await readFile(opts.bootIdPath ?? '/proc/sys/kernel/random/boot_id', 'utf8').then((s) => s.trim(), () => 'unknown');
      history = opts.historyPath ? await loadHealthHistory(opts.historyPath, Date.now(), log) : healthHistory(undefined, emptyHistory(), Date.now());
      const listeners: RoundListener[] = [snapshot];
      if (opts.repairs && opts.repairs.length > 0) {
        const repairer = createRepairer({ repairs: opts.repairs, history, log });
        let allowed = opts.repairsFrom === undefined;
        void opts.repairsFrom?.then(() => (allowed = true));
        listeners.unshift({ afterRound: async (latest) => (allowed ? repairer.afterRound(latest) : undefined) });
      }
      monitor = createHealthMonitor({ checks: opts.checks ?? [], history, listeners }, log);
      await monitor.start();
    },
    async stop() {
      await monitor?.stop();
      // Stopped by hand, the agent leaves the boot unmarked: only a real shutdown is clean.
      if (opts.bootRecord && (await (opts.systemStopping ?? systemIsStopping)())) {
        await opts.bootRecord.markCleanShutdown().then(
          () => log.info('recorded a clean shutdown'),
          (err: unknown) => log.error({ err }, 'could not record the clean shutdown'),
        );
      }
    },
    report,
    status,
    metrics,
    checkNow: async () => monitor?.round({ all: true }),
    liveness,
    routes: healthRoutes({ report, status, metrics }),
  };
}

function checkReason(r: MonitoredResult): HealthReason {
  return {
    source: 'health',
    code: r.check,
    message: r.reason,
    status: r.status === 'unhealthy' ? 'unhealthy' : 'degraded',
    ...(r.action ? { action: r.action } : {}),
    since: r.since,
  };
}

const STATUS_VALUE: Record<CheckStatus, number> = { ok: 0, degraded: 1, unhealthy: 2 };

function statusMetrics(overall: HealthStatus, results: readonly MonitoredResult[]): Metric[] {
  return [
    ...(['starting', 'ok', 'degraded', 'unhealthy'] as const).map((s): Metric => ({
      name: 'memu_health_status',
      help: 'The device\'s overall health: 1 for the current status.',
      type: 'gauge',
      labels: { status: s },
      value: s === overall ? 1 : 0,
    })),
    ...results.map((r): Metric => ({
      name: 'memu_health_check_status',
      help: 'Each health check: 0 ok, 1 degraded, 2 unhealthy.',
      type: 'gauge',
      labels: { check: r.check },
      value: STATUS_VALUE[r.status],
    })),
    ...results.map((r): Metric => ({
      name: 'memu_health_check_since_seconds',
      help: 'Since when (Unix time) each check has had its current status.',
      type: 'gauge',
      labels: { check: r.check },
      value: Math.round(r.since / 1000),
    })),
  ];
}

/** The agent's own process, under the names Prometheus' client libraries use. */
function agentMetrics(): Metric[] {
  return [
    { name: 'process_resident_memory_bytes', help: 'The agent\'s resident memory in bytes.', type: 'gauge', value: process.memoryUsage().rss },
    { name: 'process_cpu_seconds_total', help: 'CPU time the agent has used, user and system.', type: 'counter', value: cpuSeconds() },
  ];
}

/** systemd's own state: `stopping` once shutdown.target is queued (printed with a non-zero exit, so stdout is what counts). */
async function systemIsStopping(): Promise<boolean> {
  const r = await runCommandOutcome('systemctl', ['is-system-running']);
  return r.stdout.trim() === 'stopping';
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
