import { createJsonLinesProgress } from '../host/json-progress.ts';
import type { Logger } from '../host/log.ts';
import { createProgress, formatBytes, formatDuration, type Progress } from '../host/progress.ts';
import { slotRate, type SlotState } from './station-slots.ts';

/**
 * What the bench operator sees while the station flashes: on a terminal a table of the
 * slots redrawn in place; with --json the flasher's own progress lines (as `memu flash
 * --json` prints them) tagged with the slot, plus a `slot` line at every stage; otherwise
 * the flasher's progress log records and a log record per stage, through the host logger.
 */
export interface StationView {
  /** The progress the flasher reports to for this slot, when the view wants it as such. */
  flashProgress(slot: SlotState): Progress | undefined;
  /** The slot changed: it entered a new stage, got its unit (claim code and key), or did more bytes. */
  changed(slot: SlotState, what: SlotChange): void;
  /** The run is over: the last frame stays on the screen. */
  close(): void;
}

export type SlotChange = 'stage' | 'unit' | 'bytes';

const HEADER = ['slot', 'target', 'stage', 'bytes', 'rate', 'ETA', 'unit / reason'];
// Wide enough for what the columns hold at their widest ("preseeding", "1023.9 MiB / 1023.9 GiB (100%)"),
// so the table does not shift sideways while it is redrawn.
const MIN_WIDTHS = [4, 6, 10, 31, 12, 6, 0];

function cells(slot: SlotState): string[] {
  const moving = slot.stage === 'flashing' || slot.stage === 'verifying';
  const { bytesPerSecond, etaSeconds } = slotRate(slot);
  let bytes = '';
  if (moving) {
    bytes = formatBytes(slot.bytes);
    if (slot.totalBytes) bytes += ` / ${formatBytes(slot.totalBytes)} (${Math.floor((100 * slot.bytes) / slot.totalBytes)}%)`;
  }
  const rate = moving && bytesPerSecond > 0 ? `${formatBytes(bytesPerSecond)}/s` : '';
  const eta = moving && etaSeconds !== undefined ? formatDuration(etaSeconds * 1000) : '';
  const last = slot.stage === 'failed' ? (slot.reason ?? '') : slot.claimCode ? `claim code ${slot.claimCode}` : '';
  return [String(slot.slot), slot.target, slot.stage === 'failed' ? 'FAILED' : slot.stage, bytes, rate, eta, last];
}

/**
 * The bench as lines of a table, each cut to `columns` characters so that no line wraps
 * (a wrapped line would throw off the redraw in place). `steady` keeps the columns as
 * wide as they can get, for a table redrawn while the numbers change.
 */
export function renderStationTable(slots: readonly SlotState[], opts: { columns?: number; steady?: boolean } = {}): string[] {
  const columns = opts.columns ?? Infinity;
  const rows = [HEADER, ...slots.map(cells)];
  const widths = HEADER.map((_, i) => Math.max(opts.steady ? MIN_WIDTHS[i]! : 0, ...rows.map((r) => r[i]!.length)));
  return tableLines(rows, widths, columns);
}

/** Rows of cells as lines: columns padded to `widths` (the last one free), each line cut to `columns`. */
export function tableLines(rows: readonly string[][], widths: readonly number[], columns: number): string[] {
  return rows.map((r) => {
    const line = r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
    return line.length > columns ? `${line.slice(0, Math.max(0, columns - 1))}…` : line;
  });
}

/** Counts for the last line: "2 ready, 1 failed (slot 3)". */
export function benchSummary(slots: readonly SlotState[]): string {
  const ready = slots.filter((s) => s.stage === 'ready').length;
  const failed = slots.filter((s) => s.stage === 'failed');
  return `${ready} ready, ${failed.length} failed${failed.length ? ` (slot${failed.length === 1 ? '' : 's'} ${failed.map((s) => s.slot).join(', ')})` : ''}`;
}

/**
 * The table on a terminal, redrawn in place: the cursor goes back up over the last frame
 * and each line is cleared before it is written. Redrawn at once on a stage change and at
 * most every `intervalMs` for byte counts.
 */
export function createTerminalView(slots: () => readonly SlotState[], out: { write(text: string): unknown; columns?: number }, intervalMs = 250): StationView {
  let drawnLines = 0;
  let timer: NodeJS.Timeout | undefined;
  const draw = (): void => {
    timer = undefined;
    // A pseudo-terminal without a size reports 0 columns: nothing to fit then.
    const lines = renderStationTable(slots(), { columns: out.columns || Infinity, steady: true });
    const up = drawnLines > 0 ? `\x1b[${drawnLines}A` : '';
    out.write(`${up}${lines.map((l) => `\r\x1b[2K${l}\n`).join('')}`);
    drawnLines = lines.length;
  };
  return {
    flashProgress: () => undefined,
    changed(_slot, what) {
      if (what !== 'bytes') {
        if (timer) clearTimeout(timer);
        draw();
      } else {
        timer ??= setTimeout(draw, intervalMs);
      }
    },
    close() {
      if (timer) clearTimeout(timer);
      draw();
    },
  };
}

/** What a `slot` line of `--json` carries. */
export function slotLine(slot: SlotState): Record<string, unknown> {
  return {
    type: 'slot',
    slot: slot.slot,
    target: slot.target,
    stage: slot.stage,
    ...(slot.claimCode ? { claimCode: slot.claimCode, keyId: slot.keyId } : {}),
    ...(slot.reason ? { reason: slot.reason, exitCode: slot.exitCode } : {}),
  };
}

/** `--json`: JSON lines on stdout, the flasher's progress lines with the slot added. */
export function createJsonLinesView(write: (line: string) => void): StationView {
  return {
    flashProgress: (slot) => createJsonLinesProgress((line) => write(`${JSON.stringify({ ...(JSON.parse(line) as object), slot: slot.slot, target: slot.target })}\n`)),
    changed(slot, what) {
      if (what !== 'bytes') write(`${JSON.stringify(slotLine(slot))}\n`);
    },
    close() {},
  };
}

/** Neither a terminal nor --json: log records through the host logger, as `memu flash` logs its progress. */
export function createLogView(log: Logger): StationView {
  return {
    flashProgress: (slot) => createProgress(log.child({ slot: slot.slot, target: slot.target }), { tty: false }),
    changed(slot, what) {
      if (what === 'bytes') return;
      const fields = { slot: slot.slot, target: slot.target, stage: slot.stage, ...(slot.claimCode ? { claimCode: slot.claimCode, keyId: slot.keyId } : {}) };
      if (what === 'unit') log.info(fields, `slot ${slot.slot} (${slot.target}) is unit ${slot.claimCode} (key ${slot.keyId})`);
      else if (slot.stage === 'failed') log.error({ ...fields, exitCode: slot.exitCode }, `slot ${slot.slot} (${slot.target}) failed: ${slot.reason}`);
      else log.info(fields, `slot ${slot.slot} (${slot.target}) ${slot.stage}`);
    },
    close() {},
  };
}
