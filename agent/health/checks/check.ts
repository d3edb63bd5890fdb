/**
 * One named health check: what it found, in words a family reads and in numbers the fleet
 * graphs. Checks only look; repairs (agent/health/repairs) act on what they report.
 */

/** `degraded`: working but needs attention soon; `unhealthy`: something the family notices is broken or about to break. */
export type CheckStatus = 'ok' | 'degraded' | 'unhealthy';

/** A Prometheus sample, named the way node-exporter names the same fact where it has one. */
export interface Metric {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  labels?: Readonly<Record<string, string>>;
  value: number;
}

export interface CheckResult {
  /**
   * A stable name for machines, unique across checks: `data-disk-space`, `memory-pressure`,
   * `nvme-smart`. One check may give several results (one per disk, one per filesystem).
   */
  check: string;
  status: CheckStatus;
  /** What was found, for a person: "The data disk has 1.2 GB free of 30 GB (4 %)". Said also when ok. */
  reason: string;
  /** What the owner should do, or what the box does about it; absent when ok. */
  action?: string;
  metrics: Metric[];
}

export interface HealthCheck {
  /** The check's name in logs (results carry their own `check` names). */
  readonly name: string;
  /** How often it runs: cheap reads often, costly ones (SMART, unit lists) rarely. */
  readonly intervalMs: number;
  /**
   * Reads the device and judges it. Never throws for a fact the platform does not have
   * (no NVMe, no thermal zone): it returns no result for it. Throwing means the check
   * itself broke, which the monitor reports as a reason.
   */
  run(): Promise<CheckResult[]>;
}

/** The worse of two statuses. */
export function worstStatus(a: CheckStatus, b: CheckStatus): CheckStatus {
  const rank: Record<CheckStatus, number> = { ok: 0, degraded: 1, unhealthy: 2 };
  return rank[a] >= rank[b] ? a : b;
}
