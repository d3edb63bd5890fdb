import type { Progress } from './progress.ts';

/**
 * Progress as JSON lines (for `--json`): one line when a stage starts, one at
 * most every `intervalMs` while it runs, and one when it ends, each with
 * bytes, total, rate and ETA, so a factory station can drive its own display.
 */
export function createJsonLinesProgress(write: (line: string) => void, intervalMs = 1000): Progress {
  let stage = '';
  let started = 0;
  let total: number | undefined;
  let done = 0;
  let lastEmit = 0;
  const emit = (event: 'start' | 'progress' | 'done', summary?: string): void => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const line = {
      type: 'progress',
      event,
      stage,
      bytes: done,
      ...(total !== undefined ? { totalBytes: total } : {}),
      seconds: Number(elapsed.toFixed(3)),
      bytesPerSecond: Math.round(rate),
      ...(total !== undefined && rate > 0 && done < total ? { etaSeconds: Number(((total - done) / rate).toFixed(1)) } : {}),
      ...(summary ? { summary } : {}),
    };
    write(`${JSON.stringify(line)}\n`);
  };
  return {
    stage(name, totalBytes) {
      stage = name;
      started = Date.now();
      total = totalBytes;
      done = 0;
      lastEmit = Date.now();
      emit('start');
    },
    bytes(d, t) {
      done = d;
      if (t !== undefined) total = t;
      if (Date.now() - lastEmit >= intervalMs) {
        lastEmit = Date.now();
        emit('progress');
      }
    },
    done(summary) {
      emit('done', summary);
    },
  };
}
