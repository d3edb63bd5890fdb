import type { Logger } from '../host/log.ts';
import { tableLines } from './station-view.ts';
import { hasFinalReport, WATCH_HEADER, watchCells, type WatchSlot, type WatchView } from './station-watch.ts';

/**
 * `memu qa station watch`'s table of the bench (station-watch.ts): one row per slot with
 * its unit's state, cut to `columns` as the flashing table is.
 */
export function renderWatchTable(slots: readonly WatchSlot[], opts: { columns?: number } = {}): string[] {
  const columns = opts.columns ?? Infinity;
  const rows = [WATCH_HEADER, ...slots.map(watchCells)];
  // The state column is as wide as its widest word, so the table does not shift while units move on.
  const widths = WATCH_HEADER.map((_, i) => Math.max(i === 3 ? 'not flashed'.length : 0, ...rows.map((r) => r[i]!.length)));
  return tableLines(rows, widths, columns);
}

/** Counts for the watch's last line: "2 passed, 1 failed, 0 rejected, 1 without a report (slot 4)". */
export function watchSummary(slots: readonly WatchSlot[]): string {
  const count = (stage: WatchSlot['stage']) => slots.filter((s) => s.stage === stage).length;
  const waiting = slots.filter((s) => !s.earlierBatch && s.claimCode && !hasFinalReport(s));
  return `${count('passed')} passed, ${count('failed')} failed, ${count('rejected')} rejected, ${waiting.length} without a report${waiting.length ? ` (slot${waiting.length === 1 ? '' : 's'} ${waiting.map((s) => s.slot).join(', ')})` : ''}`;
}

/** The watch's table on a terminal, redrawn in place at every change (units report every few seconds at most). */
export function createWatchTerminalView(slots: () => readonly WatchSlot[], out: { write(text: string): unknown; columns?: number }): WatchView {
  let drawnLines = 0;
  const draw = (): void => {
    const lines = renderWatchTable(slots(), { columns: out.columns || Infinity });
    const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    out.write(`${up}${lines.map((l) => `\r\x1b[2K${l}\n`).join('')}`);
    drawnLines = lines.length;
  };
  return {
    listening(url) {
      out.write(`units report to ${url} (open it in a browser for this table)\n`);
      drawnLines = 0;
      draw();
    },
    changed: draw,
    close: draw,
  };
}

/** What a `unit` line of the watch's `--json` carries: the slot as the station sees it. */
export function watchSlotLine(slot: WatchSlot): Record<string, unknown> {
  return { type: 'unit', ...slot };
}

/** `--json`: a `listening` line, then a `unit` line per change, on stdout. */
export function createWatchJsonLinesView(write: (line: string) => void): WatchView {
  return {
    listening: (url) => write(`${JSON.stringify({ type: 'listening', url })}\n`),
    changed: (slot) => write(`${JSON.stringify(watchSlotLine(slot))}\n`),
    close() {},
  };
}

/** Neither a terminal nor --json: a log record per change, a rejected report or a unit's error as a warning. */
export function createWatchLogView(log: Logger): WatchView {
  return {
    listening: (url) => log.info({ url }, `units report to ${url}`),
    changed(slot) {
      const [, , , stage, , detail] = watchCells(slot);
      const fields = { slot: slot.slot, target: slot.target, claimCode: slot.claimCode, stage: slot.stage };
      const message = `slot ${slot.slot} (${slot.target}) ${stage}${detail ? `: ${detail}` : ''}`;
      if (slot.stage === 'rejected' || slot.stage === 'error' || slot.stage === 'failed') log.warn(fields, message);
      else log.info(fields, message);
    },
    close() {},
  };
}
