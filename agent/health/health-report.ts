import type { HealthStatus } from '../../shared/contracts/agent-api.ts';
import type { Logger } from 'pino';
import type { Metric } from './checks/check.ts';
import type { MonitoredResult } from './health-monitor.ts';

/**
 * Why the device is not fully well, as one module sees it. Each module contributes its
 * own reasons; the health report says `degraded` while there is any. The full health model
 * (conditions for risky actions, suggested fixes) builds on these names.
 */
export interface HealthReason {
  /** The module reporting it: `provisioning`, `stack`. */
  source: string;
  /**
   * A stable name for machines: `provisioning-failed`, `stack-unloadable`,
   * `stack-unreconciled`, `service-crash-looping`, `service-unhealthy`, `service-error`.
   */
  code: string;
  /** What a person reads. */
  message: string;
  /** How bad: `degraded` unless said. */
  status?: 'degraded' | 'unhealthy';
  /** What the owner should do, or what the box does about it. */
  action?: string;
  /** Epoch ms since when it has been so, where known. */
  since?: number;
}

/** What one module tells the health report. */
export interface HealthReport {
  /** Its sections of the report, by key (`provisioning`, `device`, `stack`). */
  sections: Record<string, unknown>;
  /** Empty when all is well. */
  reasons: HealthReason[];
  /** The module is still bringing the device up (first-boot provisioning running). */
  starting?: boolean;
  /** Its numbers for the fleet's Prometheus (AGENT_METRICS_PATH). */
  metrics?: Metric[];
}

export interface HealthSource {
  /** The module's name, for a report that failed. */
  readonly name: string;
  report(): HealthReport | Promise<HealthReport>;
}

export type { HealthStatus };

export function healthStatus(report: Pick<HealthReport, 'reasons' | 'starting'>): HealthStatus {
  if (report.reasons.some((r) => r.status === 'unhealthy')) return 'unhealthy';
  if (report.reasons.length > 0) return 'degraded';
  return report.starting ? 'starting' : 'ok';
}

/** Every source's report, merged in order. A source that fails to report is a reason itself. */
export async function collectHealth(sources: readonly HealthSource[], log: Logger): Promise<HealthReport> {
  const merged: HealthReport = { sections: {}, reasons: [] };
  for (const source of sources) {
    try {
      const report = await source.report();
      Object.assign(merged.sections, report.sections);
      merged.reasons.push(...report.reasons);
      if (report.metrics) (merged.metrics ??= []).push(...report.metrics);
      if (report.starting) merged.starting = true;
    } catch (err) {
      log.warn({ err, source: source.name }, 'a module could not report its health');
      merged.reasons.push({ source: source.name, code: 'report-failed', message: `${source.name} could not report its health: ${(err as Error).message}` });
    }
  }
  return merged;
}

/** One check in the report: its latest result, without the metrics (those are at the metrics path). */
export type ReportedCheck = Omit<MonitoredResult, 'metrics'>;

export interface HealthBody {
  status: HealthStatus;
  reasons: HealthReason[];
  version: string;
  bootId: string;
  uptimeSeconds: number;
  checks: ReportedCheck[];
  [section: string]: unknown;
}

