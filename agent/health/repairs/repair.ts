import type { CheckResult } from '../checks/check.ts';

/**
 * One thing the box does on its own about what the checks found. Every repair has a loop
 * breaker: its attempts are counted in the persisted health history, so a repair that
 * does not help stops being tried, across agent restarts and reboots.
 */

/** What the repairs' predicates may know besides the results: the history, read-only. */
export interface RepairView {
  /** Epoch ms of this decision. */
  readonly now: number;
  attemptsSince(repair: string, t: number): number;
  /** The attempts' times at or after `t`, oldest first. */
  attemptTimes(repair: string, t: number): number[];
  lastAttempt(repair: string): number | undefined;
  /** Since when (epoch ms) the check result has had its current status, if it was observed. */
  since(check: string): number | undefined;
}

export interface RepairWindow {
  max: number;
  windowMs: number;
}

/** At most `max` attempts per window (every window applies), and at least `minGapMs` between two. */
export interface RepairLimits {
  minGapMs: number;
  windows: readonly RepairWindow[];
}

export interface RepairOutcome {
  ok: boolean;
  /** For a person: what was done and what came of it. */
  message: string;
  freedBytes?: number;
}

export interface Repair {
  readonly name: string;
  /** Whether this round's results call for it (pure: the results and the history only). */
  answers(results: readonly CheckResult[], view: RepairView): boolean;
  /**
   * Optional cheap look at the device just before running (a file's presence, free
   * space): false means nothing to do, which is neither run nor counted.
   */
  needed?(results: readonly CheckResult[]): Promise<boolean>;
  readonly limits: RepairLimits;
  /**
   * How long the repairer waits for it. A run that takes longer is recorded as failed and
   * left to finish on its own; it is not started again while it still runs.
   */
  readonly timeoutMs: number;
  /** Never throws for a failure of the device (that is `ok: false`); a throw is recorded as a failure too. */
  run(results: readonly CheckResult[]): Promise<RepairOutcome>;
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** The result named `check`, if this round has it. */
export function resultNamed(results: readonly CheckResult[], check: string): CheckResult | undefined {
  return results.find((r) => r.check === check);
}
