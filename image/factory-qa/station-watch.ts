import { mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { normalizeClaimCode } from '../../shared/contracts/preseed.ts';
import {
  parseQaReport,
  parseQaUnitState,
  QA_UNIT_STATE_MAX_BYTES,
  QA_UNIT_STATE_REPORT_MAX_BYTES,
  type QaUnitState,
  type TrustedQaKey,
} from '../../shared/contracts/qa-report.ts';
import { ignoreNotFound } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { buildQaRecords, type QaRecord } from './qa-records.ts';
import { collectReports, loadTrustedQaKeys } from './qa-report-files.ts';
import { COLLECTED_REPORTS_DIR, keepReport, recordKeptReports, reportFolderFor } from './station-collect.ts';
import { readStationFile, STATION_FILE_NAME, type StationUnit } from './station.ts';

/**
 * The bench while the units test themselves (`memu qa station watch`): an HTTP server on
 * the station's LAN that the units' agents tell how their QA run goes
 * (agent/factory-qa/station-link.ts, `POST /qa/units/<claim code>`), and a live view per
 * slot of the station file's latest batch. A final report is verified and recorded
 * exactly as `collect` does (kept below `<out>/reports/`, then every report there
 * recorded by qa-records.ts), so a report with a bad signature, a stranger's key or a
 * serial or claim code seen twice is `rejected`, never passed. What a unit says about its
 * progress is shown, never trusted: only a verified report makes a slot passed or failed.
 *
 *   booting -> testing -> passed | failed | rejected     (a report)
 *                      \-> error                          (QA could not run)
 *   any state -> testing again: the unit was switched off and on and tests itself again.
 */

export type WatchStage = 'booting' | 'testing' | 'passed' | 'failed' | 'rejected' | 'error' | 'not-flashed';

export interface WatchSlot {
  /** The slot in its batch, 1-based. */
  slot: number;
  target: string;
  /** Undefined for a slot whose flash failed (it has no unit). */
  claimCode?: string;
  /** A unit of an earlier batch that reported while this one was watched. */
  earlierBatch?: boolean;
  stage: WatchStage;
  serialNumber?: string;
  /** testing: the step running and how far the run is. */
  step?: string;
  checksDone?: number;
  stepsDone?: number;
  stepsTotal?: number;
  failingChecks?: string[];
  /** Why: the flash's failure, the unit's error, the report's rejection. */
  reason?: string;
  /** The latest report of this unit, relative to `<out>/reports/`. */
  reportFile?: string;
  /** When the unit was last heard from (ms since the epoch). */
  lastContactAt?: number;
}

/** A slot has its final word once a report came and was recorded (verified or rejected). */
export function hasFinalReport(slot: Pick<WatchSlot, 'stage'>): boolean {
  return slot.stage === 'passed' || slot.stage === 'failed' || slot.stage === 'rejected';
}

/**
 * The latest `station flash` run in the station file: its batch id, or for units recorded
 * before batches were named, the last run of units with distinct slot numbers.
 */
export function latestBatch(units: readonly StationUnit[]): StationUnit[] {
  const last = units.at(-1);
  if (!last) return [];
  if (last.batch !== undefined) return units.filter((u) => u.batch === last.batch);
  const batch: StationUnit[] = [];
  for (const unit of [...units].reverse()) {
    if (unit.batch !== undefined || batch.some((u) => u.slot === unit.slot)) break;
    batch.unshift(unit);
  }
  return batch;
}

/** The slots to watch: the latest batch, in slot order; a slot whose flash failed has nothing to report. */
export function slotsToWatch(units: readonly StationUnit[]): WatchSlot[] {
  return latestBatch(units)
    .sort((a, b) => a.slot - b.slot)
    .map((u): WatchSlot =>
      u.result === 'ready' && u.claimCode
        ? { slot: u.slot, target: u.target, claimCode: u.claimCode, stage: 'booting' }
        : { slot: u.slot, target: u.target, stage: 'not-flashed', reason: u.reason ?? 'the flash failed' },
    );
}

/** The slot after a unit's progress or error message (a `done` message becomes a slot through its record: slotWithRecord). */
export function slotWithUnitState(slot: WatchSlot, state: QaUnitState, at: number): WatchSlot {
  const { step: _step, checksDone: _c, stepsDone: _d, stepsTotal: _t, failingChecks: _f, reason: _r, ...kept } = slot;
  const serialNumber = state.serialNumber ?? slot.serialNumber;
  const base = { ...kept, ...(serialNumber ? { serialNumber } : {}), lastContactAt: at };
  if (state.state === 'error') return { ...base, stage: 'error', reason: state.reason ?? 'the unit says QA could not run, without a reason' };
  return {
    ...base,
    stage: 'testing',
    ...(state.step ? { step: state.step } : {}),
    ...(state.checksDone !== undefined ? { checksDone: state.checksDone } : {}),
    ...(state.stepsDone !== undefined ? { stepsDone: state.stepsDone } : {}),
    ...(state.stepsTotal !== undefined ? { stepsTotal: state.stepsTotal } : {}),
  };
}

/** The slot as its latest report was recorded: passed, failed with the failing checks, or rejected with why. */
export function slotWithRecord(slot: WatchSlot, record: QaRecord, at?: number): WatchSlot {
  const { step: _step, checksDone: _c, stepsDone: _d, stepsTotal: _t, failingChecks: _f, reason: _r, ...kept } = slot;
  const base = { ...kept, reportFile: record.reportFile, ...(record.serialNumber ? { serialNumber: record.serialNumber } : {}), ...(at !== undefined ? { lastContactAt: at } : {}) };
  if (record.verdict === 'rejected') return { ...base, stage: 'rejected', reason: record.problem };
  if (record.verdict === 'fail') return { ...base, stage: 'failed', failingChecks: record.failingChecks };
  return { ...base, stage: 'passed' };
}

/** Exit code of a watch: 4 when any watched unit's report was rejected, 2 when a unit of the batch has no report, else 0. */
export function watchExitCode(slots: readonly WatchSlot[]): ExitCode {
  if (slots.some((s) => s.stage === 'rejected')) return ExitCode.verifyFailed;
  if (slots.some((s) => !s.earlierBatch && s.claimCode && !hasFinalReport(s))) return ExitCode.badInput;
  return ExitCode.ok;
}

/** Every unit of the latest batch has its report (or the batch has no unit at all). */
export function batchDone(slots: readonly WatchSlot[]): boolean {
  return slots.filter((s) => !s.earlierBatch && s.claimCode).every(hasFinalReport);
}

/** What the watch tells its view. */
export interface WatchView {
  listening(url: string): void;
  changed(slot: WatchSlot): void;
  close(): void;
}

export interface WatchOptions {
  keysDir: string;
  outDir: string;
  /** Where the station file is (default: the keys directory, as `station flash` keeps it). */
  benchDir?: string;
  host: string;
  port: number;
  /** End once every unit of the latest batch has its report. */
  untilDone: boolean;
  /** End after this long in any case. */
  timeoutMs?: number;
  log: Logger;
  view: WatchView;
  /** The live slots, updated in place, for the view to read. */
  slots?: WatchSlot[];
  signal?: AbortSignal;
}

export interface WatchResult {
  url: string;
  slots: WatchSlot[];
  /** How the watch ended. */
  ended: 'done' | 'timeout' | 'stopped';
  records: { json: string; csv: string } | undefined;
  exitCode: ExitCode;
}

/** `HOST:PORT` (`[::1]:8470` for IPv6) as given to --listen. */
export function parseListen(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new MemuError(`--listen ${text} is not HOST:PORT`, ExitCode.badInput, 'e.g. --listen 0.0.0.0:8470 (every interface) or --listen 192.168.50.1:8470 (the bench LAN only)');
  return { host: match[1] ?? match[2]!, port };
}

type Answer = { status: number; body: unknown };

export async function watchStation(opts: WatchOptions): Promise<WatchResult> {
  const stationFile = join(resolve(opts.benchDir ?? opts.keysDir), STATION_FILE_NAME);
  const readUnits = async () => (await readStationFile(stationFile).catch(ignoreNotFound))?.units ?? [];
  let units = await readUnits();
  if (units.length === 0) throw new MemuError(`no station file with flashed units at ${stationFile}`, ExitCode.badInput, 'flash the batch first (`memu qa station flash ... --station-url URL`), and pass the same --keys (and --bench) here');
  let trusted: TrustedQaKey[] = await loadTrustedQaKeys(resolve(opts.keysDir));
  const outDir = resolve(opts.outDir);
  const reportsDir = join(outDir, COLLECTED_REPORTS_DIR);
  await mkdir(reportsDir, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot make ${reportsDir}: ${err.code ?? err.message}`, ExitCode.environment, 'pass --out a directory the station may write');
  });

  const slots = opts.slots ?? [];
  slots.splice(0, slots.length, ...slotsToWatch(units));
  if (!slots.some((s) => s.claimCode)) throw new MemuError(`the latest batch in ${stationFile} has no flashed unit: every slot failed`, ExitCode.badInput, 'flash the drives again, then watch them');
  let end: (how: WatchResult['ended']) => void = () => {};
  const endedBy = new Promise<WatchResult['ended']>((resolveEnd) => (end = resolveEnd));
  const changed = (i: number, next: WatchSlot) => {
    slots[i] = next;
    opts.view.changed(next);
    if (opts.untilDone && batchDone(slots)) end('done');
  };
  const slotOf = (claimCode: string): number => slots.findIndex((s) => s.claimCode === claimCode);

  // Reports this station already holds (a watch started again, an earlier collect): their slots start from them.
  let records = buildQaRecords(await collectReports(reportsDir, trusted));
  for (const [i, slot] of slots.entries()) {
    const latest = records.filter((r) => r.claimCode === slot.claimCode).sort((a, b) => a.testedAt.localeCompare(b.testedAt)).at(-1);
    if (slot.claimCode && latest) slots[i] = slotWithRecord(slot, latest);
  }
  let written: { json: string; csv: string } | undefined;

  // Reports are kept and recorded one at a time: each recording reads every report kept so far.
  let recording: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(work: () => Promise<T>): Promise<T> => {
    const next = recording.then(work);
    recording = next.catch(() => undefined);
    return next;
  };

  const recordReport = (claimCode: string, report: Buffer, signature: Buffer, at: number) =>
    oneAtATime(async () => {
      // Named as `collect` names it, so a report that came over the LAN and is later read from the drive is one copy.
      const reportFile = await keepReport(reportsDir, reportFolderFor(report), report, signature);
      const kept = await recordKeptReports(reportsDir, outDir, trusted);
      records = kept.records;
      written = { json: kept.json, csv: kept.csv };
      const record = records.find((r) => r.reportFile === reportFile)!;
      const i = slotOf(claimCode);
      changed(i, slotWithRecord(slots[i]!, record, at));
      // A new report can make another unit's a duplicate (the same serial): every slot follows its own record.
      for (const [j, slot] of slots.entries()) {
        if (j === i || !slot.reportFile) continue;
        const now = records.find((r) => r.reportFile === slot.reportFile);
        if (now && (now.verdict !== recordVerdictOf(slot) || now.problem !== (slot.stage === 'rejected' ? slot.reason : ''))) changed(j, slotWithRecord(slot, now));
      }
      if (record.verdict === 'rejected') opts.log.warn({ claimCode, reportFile: join(reportsDir, reportFile) }, `the report of ${claimCode} is rejected: ${record.problem}`);
      return record;
    });

  /** A unit the station file knows: a slot of the latest batch, or a unit of an earlier one, which gets a row when it reports. */
  const findUnit = async (claimCode: string): Promise<number> => {
    let i = slotOf(claimCode);
    if (i >= 0) return i;
    // Flashed after the watch started: read the station file and the keys again.
    units = await readUnits();
    const unit = units.find((u) => u.result === 'ready' && u.claimCode === claimCode);
    if (!unit) return -1;
    trusted = await loadTrustedQaKeys(resolve(opts.keysDir));
    const inLatest = latestBatch(units).includes(unit);
    i = slots.length;
    changed(i, { slot: unit.slot, target: unit.target, claimCode, stage: 'booting', ...(inLatest ? {} : { earlierBatch: true }) });
    return i;
  };

  const handleUnitState = async (claimCode: string, body: Buffer): Promise<Answer> => {
    const parsed = parseQaUnitState(body);
    if (!parsed.ok) return { status: 400, body: { error: `not a memu-qa-unit-state/1 message: ${parsed.problems.join('; ')}` } };
    const state = parsed.state;
    if (state.claimCode !== claimCode) return { status: 400, body: { error: `the message is for claim code ${state.claimCode}, but was sent to /qa/units/${claimCode}` } };
    const i = await findUnit(claimCode);
    if (i < 0) return { status: 404, body: { error: `claim code ${claimCode} is not a unit this station flashed (${stationFile})` } };
    const at = Date.now();
    if (state.state !== 'done') {
      changed(i, slotWithUnitState(slots[i]!, state, at));
      return { status: 200, body: { stage: slots[i]!.stage } };
    }
    const report = Buffer.from(state.report!, 'base64');
    const signature = Buffer.from(state.signature!, 'base64');
    if (report.length > QA_UNIT_STATE_REPORT_MAX_BYTES) return { status: 413, body: { error: `the report is ${report.length} bytes, more than ${QA_UNIT_STATE_REPORT_MAX_BYTES}` } };
    // Kept only under the unit it names: a report sent to another unit's address must not become that unit's record.
    const named = parseQaReport(report.toString('utf8'));
    if (named.ok && named.report.claimCode !== claimCode) return { status: 400, body: { error: `the report names claim code ${named.report.claimCode ?? '(none)'}, but was sent for ${claimCode}` } };
    const record = await recordReport(claimCode, report, signature, at);
    return { status: 200, body: { verdict: record.verdict, ...(record.problem ? { problem: record.problem } : {}) } };
  };

  const server = createServer((req, res) => {
    route(req)
      .then((answer) => send(res, answer))
      .catch((err: unknown) => {
        opts.log.error({ err }, 'the station could not handle a request');
        send(res, { status: 500, body: { error: (err as Error).message } });
      });
  });

  const route = async (req: IncomingMessage): Promise<Answer | { status: number; html: string }> => {
    const url = new URL(req.url ?? '/', 'http://station');
    const unitPath = /^\/qa\/units\/([^/]+)$/.exec(url.pathname);
    if (unitPath && req.method === 'POST') {
      const body = await readBody(req, QA_UNIT_STATE_MAX_BYTES);
      if (body === 'too-large') return { status: 413, body: { error: `the message is larger than ${QA_UNIT_STATE_MAX_BYTES} bytes` } };
      const claimCode = decodeURIComponent(unitPath[1]!);
      if (normalizeClaimCode(claimCode) !== claimCode) return { status: 404, body: { error: `${claimCode} is not a claim code` } };
      return handleUnitState(claimCode, body);
    }
    if (req.method === 'GET' && url.pathname === '/qa/units') return { status: 200, body: { slots } };
    if (req.method === 'GET' && url.pathname === '/') return { status: 200, html: watchPage(slots) };
    req.resume();
    return { status: unitPath ? 405 : 404, body: { error: unitPath ? 'a unit state is sent with POST' : 'not found' } };
  };

  await new Promise<void>((resolveListen, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new MemuError(`cannot listen on ${opts.host}:${opts.port}: ${err.code ?? err.message}`, ExitCode.environment, err.code === 'EADDRINUSE' ? 'another program (or another watch) uses that port: pick another --listen port' : 'pass --listen an address of this station')),
    );
    server.listen(opts.port, opts.host, () => resolveListen());
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
  opts.log.info({ url, stationFile, slots: slots.length }, `watching ${slots.length} slot${slots.length === 1 ? '' : 's'} on ${url}`);
  opts.view.listening(url);

  if (opts.untilDone && batchDone(slots)) end('done');
  const timer = opts.timeoutMs !== undefined ? setTimeout(() => end('timeout'), opts.timeoutMs) : undefined;
  const onAbort = () => end('stopped');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) end('stopped');
  const ended = await endedBy;
  clearTimeout(timer);
  opts.signal?.removeEventListener('abort', onAbort);
  // Reports already being recorded finish first; the server answers nothing more.
  server.close();
  await recording;
  // One turn more, so the answer to the report that ended the watch is written before its connection goes.
  await new Promise((r) => setImmediate(r));
  server.closeAllConnections();
  opts.view.close();
  return { url, slots, ended, records: written, exitCode: watchExitCode(slots) };
}

function recordVerdictOf(slot: WatchSlot): QaRecord['verdict'] | undefined {
  return slot.stage === 'passed' ? 'pass' : slot.stage === 'failed' ? 'fail' : slot.stage === 'rejected' ? 'rejected' : undefined;
}

/** The body, or 'too-large' as soon as it passes `max` bytes (by its Content-Length, or while it arrives). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | 'too-large'> {
  return new Promise((resolveBody, reject) => {
    if (Number(req.headers['content-length'] ?? 0) > max) {
      req.resume();
      return resolveBody('too-large');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        return resolveBody('too-large');
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!over) resolveBody(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

function send(res: ServerResponse, answer: Answer | { status: number; html: string }): void {
  if ('html' in answer) {
    res.writeHead(answer.status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(answer.html);
    return;
  }
  const body = JSON.stringify(answer.body);
  res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The read-only page at `/`: the slots as a table, reloaded every 2 seconds. */
export function watchPage(slots: readonly WatchSlot[]): string {
  const rows = slots
    .map((s) => {
      const cells = watchCells(s);
      return `<tr class="${s.stage}">${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>Memu QA bench</title>
<style>body{font-family:sans-serif;margin:1.5rem}table{border-collapse:collapse}td,th{padding:.3rem .8rem;text-align:left;border-bottom:1px solid #ddd}
.passed td:nth-child(4){color:#070;font-weight:bold}.failed td:nth-child(4),.rejected td:nth-child(4),.error td:nth-child(4),.not-flashed td:nth-child(4){color:#b00;font-weight:bold}</style>
</head><body><h1>QA bench</h1>
<table><tr>${WATCH_HEADER.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>
${rows}
</table></body></html>
`;
}

export const WATCH_HEADER = ['slot', 'target', 'claim code', 'state', 'serial', 'progress / result'];

/** One row of the bench: what the terminal table and the page show. */
export function watchCells(s: WatchSlot): string[] {
  const slot = s.earlierBatch ? `${s.slot}*` : String(s.slot);
  let stage: string;
  let detail = '';
  switch (s.stage) {
    case 'booting':
      stage = 'booting';
      detail = 'no contact yet';
      break;
    case 'testing': {
      stage = 'testing';
      const steps = s.stepsTotal ? `step ${Math.min((s.stepsDone ?? 0) + 1, s.stepsTotal)} of ${s.stepsTotal}` : '';
      const checks = s.checksDone !== undefined ? `${s.checksDone} check${s.checksDone === 1 ? '' : 's'} done` : '';
      detail = [s.step, steps, checks].filter(Boolean).join(', ');
      break;
    }
    case 'passed':
      stage = 'PASSED';
      break;
    case 'failed':
      stage = 'FAILED';
      detail = s.failingChecks?.join(', ') ?? '';
      break;
    case 'rejected':
      stage = 'REJECTED';
      detail = s.reason ?? '';
      break;
    case 'error':
      stage = 'ERROR';
      detail = s.reason ?? '';
      break;
    case 'not-flashed':
      stage = 'not flashed';
      detail = s.reason ?? '';
      break;
  }
  return [slot, s.target, s.claimCode ?? '', stage, s.serialNumber ?? '', detail];
}
