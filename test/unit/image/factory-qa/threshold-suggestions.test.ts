import { describe, expect, it } from 'vitest';
import { percentile, suggestThresholds } from '../../../../image/factory-qa/threshold-suggestions.ts';
import { pi5Report } from './station-fixtures.ts';

describe('threshold suggestions', () => {
  it('percentile interpolates between closest ranks', () => {
    expect(percentile([10], 5)).toBe(10);
    expect(percentile([1, 2, 3, 4, 5], 50)).toBe(3);
    expect(percentile([0, 100], 5)).toBe(5);
    expect(percentile([10, 20, 30, 40], 95)).toBeCloseTo(38.5);
  });

  it('minimums from p5 less the margin, maximums from p95 plus it; skipped and non-numeric checks do not count', () => {
    // 20 units: write speeds 300…490 MB/s, load temperatures 60…79 °C; one unit's NPU skipped.
    const reports = Array.from({ length: 20 }, (_, i) =>
      pi5Report((r) => {
        r.checks[1]!.measured = 300 + i * 10;
        r.checks[2]!.measured = 60 + i;
      }),
    );
    const byCheck = Object.fromEntries(suggestThresholds(reports, 10).map((s) => [s.check, s]));
    expect(Object.keys(byCheck)).toEqual(['disk-write-speed', 'memory-size', 'temperature-load']);
    expect(byCheck['disk-write-speed']).toEqual({ check: 'disk-write-speed', unit: 'MB/s', bound: 'min', n: 20, min: 300, p5: 309.5, median: 395, p95: 480.5, max: 490, current: 200, suggested: 278.6 });
    expect(byCheck['temperature-load']).toMatchObject({ bound: 'max', n: 20, min: 60, p95: 78.1, max: 79, current: 85, suggested: 85.9 });
    expect(byCheck['memory-size']).toMatchObject({ n: 20, min: 8052, suggested: 7246.8 });
  });

  it('a margin of 0 suggests the percentile itself', () => {
    expect(suggestThresholds([pi5Report()], 0).find((s) => s.check === 'disk-write-speed')!.suggested).toBe(412.3);
  });
});
