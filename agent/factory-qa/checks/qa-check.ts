import type { QaCheckResult, QaThreshold } from '../../../shared/contracts/qa-report.ts';
import type { CommandOutcome } from '../../../shared/process/run-command.ts';

/**
 * What a QA evaluator returns for one check: the report's check result without its
 * duration, which the run measures around the reader and the evaluator together.
 * Evaluators are pure functions of facts and thresholds; readers beside them gather the
 * facts from sysfs, procfs and tools.
 */
export type QaCheckOutcome = Omit<QaCheckResult, 'durationMs'> & { durationMs?: number };

/** A measurement that must reach `min`. */
export function atLeast(check: string, measured: number, min: number, unit: string, what: string): QaCheckOutcome {
  return bounded(check, measured, { min }, unit, what);
}

/** A measurement that must stay at or below `max`. */
export function atMost(check: string, measured: number, max: number, unit: string, what: string): QaCheckOutcome {
  return bounded(check, measured, { max }, unit, what);
}

function bounded(check: string, measured: number, threshold: { min: number } | { max: number }, unit: string, what: string): QaCheckOutcome {
  const [limit, pass, allowed, below] =
    'min' in threshold ? [threshold.min, measured >= threshold.min, 'at least', 'below'] : [threshold.max, measured <= threshold.max, 'at most', 'above'];
  const shown = (n: number) => `${formatNumber(n)}${unitSuffix(unit)}`;
  const needed = 'min' in threshold ? 'needed' : 'allowed';
  return {
    check,
    verdict: pass ? 'pass' : 'fail',
    measured,
    unit,
    threshold,
    reason: pass ? `${what}: ${shown(measured)}, ${allowed} ${shown(limit)} ${needed}.` : `${what}: ${shown(measured)}, ${below} the ${shown(limit)} ${needed}.`,
  };
}

export function skipped(check: string, reason: string): QaCheckOutcome {
  return { check, verdict: 'skipped', measured: null, unit: '', reason };
}

export function failed(check: string, reason: string, threshold?: QaThreshold): QaCheckOutcome {
  return { check, verdict: 'fail', measured: null, unit: '', ...(threshold ? { threshold } : {}), reason };
}

export function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

const unitSuffix = (unit: string) => (unit === '' ? '' : ` ${unit}`);

/** How readers run tools: shared/process/run-command.ts's runCommandOutcome on the device, recorded output in tests. */
export type QaCommandRunner = (cmd: string, args: readonly string[]) => Promise<Pick<CommandOutcome, 'code' | 'stdout' | 'stderr' | 'notInstalled' | 'startError'>>;

/** A tool the image lacks is a fault of the image, named with its Debian package. */
export function notInstalled(tool: string, pkg: string): string {
  return `${tool} is not installed in the image (Debian package ${pkg}); add it to the profile's packages.`;
}
