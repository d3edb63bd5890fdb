import { describe, expect, it } from 'vitest';
import { renderPrometheusText } from '../../../../agent/health/prometheus-text.ts';

describe('Prometheus text format', () => {
  it('groups samples of one name under one HELP and TYPE, and escapes label values', () => {
    const text = renderPrometheusText([
      { name: 'node_filesystem_avail_bytes', help: 'Free bytes.', type: 'gauge', labels: { mountpoint: '/var/lib/memu' }, value: 1024 },
      { name: 'memu_health_check_status', help: 'Status.', type: 'gauge', labels: { check: 'a"b\\c' }, value: 2 },
      { name: 'node_filesystem_avail_bytes', help: 'Free bytes.', type: 'gauge', labels: { mountpoint: '/' }, value: 2048 },
    ]);
    expect(text).toBe(
      [
        '# HELP node_filesystem_avail_bytes Free bytes.',
        '# TYPE node_filesystem_avail_bytes gauge',
        'node_filesystem_avail_bytes{mountpoint="/var/lib/memu"} 1024',
        'node_filesystem_avail_bytes{mountpoint="/"} 2048',
        '# HELP memu_health_check_status Status.',
        '# TYPE memu_health_check_status gauge',
        'memu_health_check_status{check="a\\"b\\\\c"} 2',
        '',
      ].join('\n'),
    );
  });

  it('refuses a name Prometheus would not accept', () => {
    expect(() => renderPrometheusText([{ name: 'memu-bad', help: '', type: 'gauge', value: 1 }])).toThrow(/not a valid Prometheus metric name/);
  });
});
