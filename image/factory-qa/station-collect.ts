import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseQaReport, QA_REPORT_FILE_NAME, QA_REPORT_SIGNATURE_FILE_NAME } from '../../shared/contracts/qa-report.ts';
import { writeFileDurably } from '../../shared/files/durable-files.ts';
import { openFatVolume } from '../../shared/fat/fat-volume.ts';
import { ExitCode } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { buildQaRecords, writeQaRecords, type QaRecord } from './qa-records.ts';
import type { TrustedQaKey } from '../../shared/contracts/qa-report.ts';
import { collectReports, loadTrustedQaKeys } from './qa-report-files.ts';
import { refuseTargetGivenTwice } from './station.ts';

/**
 * The station reading reports back (`memu qa station collect`): each drive's report and
 * signature from its first FAT partition, without mounting it (mtools, shared/fat), copied
 * below `<out>/reports/`, then verified and recorded exactly as `memu qa records` does, so
 * a bad signature, a stranger's key or a serial or claim code seen twice is `rejected`,
 * never passed.
 */

/** Below the output directory: one folder per report read, named after the unit and the report's hash. */
export const COLLECTED_REPORTS_DIR = 'reports';
const REPORT_MAX_BYTES = 1024 * 1024;
const SIGNATURE_MAX_BYTES = 64 * 1024;

export type CollectedSlot =
  | { slot: number; target: string; outcome: 'collected'; reportFile: string; serialNumber: string; claimCode: string; verdict: QaRecord['verdict']; failingChecks: string[]; problem: string }
  | { slot: number; target: string; outcome: 'no-report' | 'unreadable'; problem: string };

export interface StationCollectResult {
  slots: CollectedSlot[];
  records: QaRecord[];
  json: string;
  csv: string;
  exitCode: ExitCode;
}

type ReadFromDrive = { ok: true; report: Buffer; signature?: Buffer } | { ok: false; outcome: 'no-report' | 'unreadable'; problem: string };

async function readFromDrive(target: string): Promise<ReadFromDrive> {
  let names: string[];
  let volume;
  try {
    volume = await openFatVolume(target);
    names = (await volume.listRoot()).map((n) => n.toLowerCase());
  } catch (err) {
    return { ok: false, outcome: 'unreadable', problem: `cannot read the first FAT partition of ${target}: ${(err as Error).message}` };
  }
  if (!names.includes(QA_REPORT_FILE_NAME)) return { ok: false, outcome: 'no-report', problem: `no report on ${target}: the unit has not finished QA or was not booted` };
  try {
    const report = await volume.readFile(QA_REPORT_FILE_NAME, REPORT_MAX_BYTES);
    if (report === 'too-large') return { ok: false, outcome: 'unreadable', problem: `${QA_REPORT_FILE_NAME} on ${target} is larger than ${REPORT_MAX_BYTES} bytes: not a QA report` };
    // A missing signature is recorded (as rejected, by the records), not skipped.
    const signature = names.includes(QA_REPORT_SIGNATURE_FILE_NAME) ? await volume.readFile(QA_REPORT_SIGNATURE_FILE_NAME, SIGNATURE_MAX_BYTES) : undefined;
    if (signature === 'too-large') return { ok: false, outcome: 'unreadable', problem: `${QA_REPORT_SIGNATURE_FILE_NAME} on ${target} is larger than ${SIGNATURE_MAX_BYTES} bytes: not a signature` };
    return { ok: true, report, ...(signature ? { signature } : {}) };
  } catch (err) {
    return { ok: false, outcome: 'unreadable', problem: `cannot read the report on ${target}: ${(err as Error).message}` };
  }
}

/**
 * The folder a report is kept in: the serial it names (unverified, for people) and its
 * hash, so reading the same drive twice keeps one copy while two different reports never
 * overwrite each other (a duplicate serial must reach the records to be rejected).
 */
export function reportFolderFor(report: Buffer): string {
  const parsed = parseQaReport(report.toString('utf8'));
  const serial = parsed.ok ? parsed.report.serialNumber.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64) || 'no-serial' : 'not-a-report';
  return `${serial}-${createHash('sha256').update(report).digest('hex').slice(0, 12)}`;
}

/** Keeps a report (and its signature, when there is one) below `reportsDir/<folder>/`, durably; returns its path relative to `reportsDir`, as the records name it. */
export async function keepReport(reportsDir: string, folder: string, report: Buffer, signature: Buffer | undefined): Promise<string> {
  const path = join(reportsDir, folder, QA_REPORT_FILE_NAME);
  await writeFileDurably(path, report, 0o644);
  if (signature) await writeFileDurably(`${path}.sig`, signature, 0o644);
  return `${folder}/${QA_REPORT_FILE_NAME}`;
}

/**
 * Verifies every report kept below `reportsDir` (earlier batches' too, so a serial seen
 * before is caught as a duplicate) and writes the records into `outDir`, as `memu qa
 * records` does.
 */
export async function recordKeptReports(reportsDir: string, outDir: string, trusted: readonly TrustedQaKey[]): Promise<{ records: QaRecord[]; json: string; csv: string }> {
  const records = buildQaRecords(await collectReports(reportsDir, trusted));
  return { records, ...(await writeQaRecords(outDir, records)) };
}

export async function collectFromDrives(opts: { targets: readonly string[]; keysDir: string; outDir: string; log: Logger }): Promise<StationCollectResult> {
  await refuseTargetGivenTwice(opts.targets);
  // The keys first: a wrong --keys is bad input before any drive is read.
  const trusted = await loadTrustedQaKeys(resolve(opts.keysDir));
  const outDir = resolve(opts.outDir);
  const reportsDir = join(outDir, COLLECTED_REPORTS_DIR);
  const read = await Promise.all(opts.targets.map((t) => readFromDrive(t)));
  const copied = new Map<number, string>();
  const taken = new Set<string>();
  for (const [i, r] of read.entries()) {
    if (!r.ok) continue;
    // Two drives of one batch with the very same report (a cloned drive) stay two reports, so the records see the serial twice.
    let folder = reportFolderFor(r.report);
    if (taken.has(folder)) folder = `${folder}-slot${i + 1}`;
    taken.add(folder);
    const reportFile = await keepReport(reportsDir, folder, r.report, r.signature);
    copied.set(i, reportFile);
    opts.log.info({ slot: i + 1, target: opts.targets[i], reportFile: join(reportsDir, reportFile) }, `report read from ${opts.targets[i]}`);
  }
  await mkdir(reportsDir, { recursive: true });
  const { records, ...written } = await recordKeptReports(reportsDir, outDir, trusted);
  const slots = read.map((r, i): CollectedSlot => {
    const slot = i + 1;
    const target = opts.targets[i]!;
    if (!r.ok) return { slot, target, outcome: r.outcome, problem: r.problem };
    const reportFile = copied.get(i)!;
    const rec = records.find((x) => x.reportFile === reportFile)!;
    return { slot, target, outcome: 'collected', reportFile: join(reportsDir, reportFile), serialNumber: rec.serialNumber, claimCode: rec.claimCode, verdict: rec.verdict, failingChecks: rec.failingChecks, problem: rec.problem };
  });
  for (const s of slots) if (s.outcome !== 'collected' || s.verdict === 'rejected') opts.log.warn({ slot: s.slot, target: s.target }, s.problem);
  const rejected = slots.some((s) => s.outcome === 'collected' && s.verdict === 'rejected');
  const missing = slots.some((s) => s.outcome !== 'collected');
  return { slots, records, ...written, exitCode: rejected ? ExitCode.verifyFailed : missing ? ExitCode.badInput : ExitCode.ok };
}

