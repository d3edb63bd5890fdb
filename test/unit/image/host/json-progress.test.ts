import { describe, expect, it } from 'vitest';
import { createJsonLinesProgress } from '../../../../image/host/json-progress.ts';

describe('JSON progress lines (--json)', () => {
  it('emits a start line, throttled progress with rate and ETA, and a done line', () => {
    const lines: string[] = [];
    const progress = createJsonLinesProgress((l) => lines.push(l), 0);
    progress.stage('write', 1000);
    progress.bytes(400);
    progress.done('ok');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
    expect(parsed.map((p) => p.event)).toEqual(['start', 'progress', 'done']);
    expect(parsed[1]).toMatchObject({ type: 'progress', stage: 'write', bytes: 400, totalBytes: 1000 });
    expect(parsed[2]).toMatchObject({ summary: 'ok' });
  });
});
