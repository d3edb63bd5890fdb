import type { Logger } from 'pino';

/**
 * Why the device is not fully well, as one module sees it. Each module contributes its
 * own reasons; /healthz says `degraded` while there is any. The full health model
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
}

/** What one module tells /healthz. */
export interface HealthReport {
  /** Its sections of the /healthz body, by key (`provisioning`, `device`, `stack`). */
  sections: Record<string, unknown>;
  /** Empty when all is well. */
  reasons: HealthReason[];
}

export interface HealthSource {
  /** The module's name, for a report that failed. */
  readonly name: string;
  report(): HealthReport | Promise<HealthReport>;
}

export type HealthStatus = 'ok' | 'degraded';

export function healthStatus(reasons: readonly HealthReason[]): HealthStatus {
  return reasons.length > 0 ? 'degraded' : 'ok';
}

/** Every source's report, merged in order. A source that fails to report is a reason itself. */
export async function collectHealth(sources: readonly HealthSource[], log: Logger): Promise<HealthReport> {
  const merged: HealthReport = { sections: {}, reasons: [] };
  for (const source of sources) {
    try {
      const report = await source.report();
      Object.assign(merged.sections, report.sections);
      merged.reasons.push(...report.reasons);
    } catch (err) {
      log.warn({ err, source: source.name }, 'a module could not report its health');
      merged.reasons.push({ source: source.name, code: 'report-failed', message: `${source.name} could not report its health: ${(err as Error).message}` });
    }
  }
  return merged;
}
