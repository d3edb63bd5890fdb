import type { Metric } from './checks/check.ts';

/**
 * Prometheus' text exposition format (version 0.0.4): one HELP and TYPE line per metric
 * name, then its samples. Samples of one name are grouped even when several checks give
 * them; label values are escaped as the format requires.
 */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function renderPrometheusText(metrics: readonly Metric[]): string {
  const byName = new Map<string, Metric[]>();
  for (const m of metrics) {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(m.name)) throw new Error(`"${m.name}" is not a valid Prometheus metric name`);
    byName.set(m.name, [...(byName.get(m.name) ?? []), m]);
  }
  const lines: string[] = [];
  for (const [name, samples] of byName) {
    lines.push(`# HELP ${name} ${samples[0]!.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${name} ${samples[0]!.type}`);
    for (const s of samples) lines.push(`${name}${renderLabels(s.labels)} ${formatValue(s.value)}`);
  }
  return lines.join('\n') + '\n';
}

function renderLabels(labels: Metric['labels']): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
