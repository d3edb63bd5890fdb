import type { QaReport } from '../../shared/contracts/qa-report.ts';

/**
 * Thresholds from measurements of real units: for a check with a lower bound, a low
 * percentile (p5) less a margin, so that 95 % of good units are well clear of it and a
 * unit far below its peers fails; for an upper bound, p95 plus the margin. Skipped checks
 * and values that are not numbers do not count.
 */
export interface ThresholdSuggestion {
  check: string;
  unit: string;
  bound: 'min' | 'max';
  n: number;
  min: number;
  p5: number;
  median: number;
  p95: number;
  max: number;
  /** The threshold the reports were judged against (the most common one). */
  current?: number;
  suggested: number;
}

/** Linear interpolation between closest ranks (R's and NumPy's default). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new Error('no values');
  const at = (sorted.length - 1) * (p / 100);
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (at - low);
}

const round1 = (n: number) => Math.round(n * 10) / 10;

export function suggestThresholds(reports: readonly QaReport[], marginPercent: number): ThresholdSuggestion[] {
  const byCheck = new Map<string, { unit: string; bound: 'min' | 'max'; values: number[]; thresholds: number[] }>();
  for (const report of reports) {
    for (const c of report.checks) {
      if (c.verdict === 'skipped' || typeof c.measured !== 'number') continue;
      const bound = c.threshold?.min !== undefined ? 'min' : c.threshold?.max !== undefined ? 'max' : undefined;
      if (!bound) continue;
      const entry = byCheck.get(c.check) ?? { unit: c.unit, bound, values: [], thresholds: [] };
      entry.values.push(c.measured);
      entry.thresholds.push(c.threshold![bound]!);
      byCheck.set(c.check, entry);
    }
  }
  return [...byCheck.entries()]
    .map(([check, e]) => {
      const sorted = [...e.values].sort((a, b) => a - b);
      const p5 = percentile(sorted, 5);
      const p95 = percentile(sorted, 95);
      const margin = marginPercent / 100;
      return {
        check,
        unit: e.unit,
        bound: e.bound,
        n: sorted.length,
        min: sorted[0]!,
        p5: round1(p5),
        median: round1(percentile(sorted, 50)),
        p95: round1(p95),
        max: sorted.at(-1)!,
        current: mostCommon(e.thresholds),
        suggested: round1(e.bound === 'min' ? p5 * (1 - margin) : p95 * (1 + margin)),
      };
    })
    .sort((a, b) => a.check.localeCompare(b.check));
}

function mostCommon(values: readonly number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}
