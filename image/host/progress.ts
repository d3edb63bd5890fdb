import type { Logger } from './log.ts';

/**
 * Progress of long work: on a terminal one redrawn status line on stderr
 * (stage, elapsed, bytes, rate, ETA); otherwise `progress` log records at most
 * every few seconds, so JSON logs carry the same facts without flooding.
 */
export interface Progress {
  /** Starts a named stage; `totalBytes` enables percentages and an ETA. */
  stage(name: string, totalBytes?: number): void;
  /** Reports bytes done in the current stage. */
  bytes(done: number, total?: number): void;
  /** Ends the current stage (leaves its final line on a terminal). */
  done(summary?: string): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(s % 60).padStart(2, '0')}s`;
}

export function createProgress(log: Logger, opts: { tty?: boolean } = {}): Progress {
  const tty = opts.tty ?? Boolean(process.stderr.isTTY);
  let name = '';
  let started = 0;
  let total: number | undefined;
  let done = 0;
  let lastEmit = 0;
  let timer: NodeJS.Timeout | undefined;

  const line = (): string => {
    const elapsed = Date.now() - started;
    let s = `[${name}] ${formatDuration(elapsed)}`;
    if (done > 0 || total) {
      s += `  ${formatBytes(done)}`;
      if (total) s += ` / ${formatBytes(total)} (${((100 * done) / total).toFixed(0)}%)`;
      const rate = done / Math.max(elapsed / 1000, 0.001);
      s += `  ${formatBytes(rate)}/s`;
      if (total && done > 0 && done < total) s += `  ETA ${formatDuration(((total - done) / rate) * 1000)}`;
    }
    return s;
  };
  const draw = () => process.stderr.write(`\r\x1b[2K${line()}`);

  return {
    stage(stageName, totalBytes) {
      name = stageName;
      started = Date.now();
      total = totalBytes;
      done = 0;
      lastEmit = 0;
      if (tty) {
        draw();
        timer = setInterval(draw, 500);
        timer.unref();
      } else {
        log.info({ stage: name, totalBytes }, `stage ${name} started`);
      }
    },
    bytes(d, t) {
      done = d;
      if (t !== undefined) total = t;
      if (!tty && Date.now() - lastEmit > 5000) {
        lastEmit = Date.now();
        log.info({ stage: name, bytes: done, totalBytes: total, elapsedMs: Date.now() - started }, 'progress');
      }
    },
    done(summary) {
      if (timer) clearInterval(timer);
      timer = undefined;
      const elapsedMs = Date.now() - started;
      if (tty) process.stderr.write(`\r\x1b[2K${line()}${summary ? `  ${summary}` : ''}\n`);
      else log.info({ stage: name, elapsedMs, bytes: done || undefined, summary }, `stage ${name} done`);
    },
  };
}
