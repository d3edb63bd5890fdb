/** A benchmark's result as the README shows it: measure, memu, reference, ratio. */
export type BenchRow = [measure: string, memu: string, reference: string, ratio: string];

export function printBenchTable(rows: readonly BenchRow[]): void {
  const header: BenchRow = ['measure', 'memu', 'reference', 'ratio'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const r of rows) console.log(line(r));
}

/** A ratio with two decimals; a reference of 0 gives "—". */
export function ratio(memu: number, reference: number): string {
  return reference > 0 ? (memu / reference).toFixed(2) : '—';
}
