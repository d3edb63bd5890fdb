import { join } from 'node:path';
import { writeFileDurably } from '../../shared/files/durable-files.ts';
import { QA_RECORDS_JSON, type CollectedReport } from './qa-report-files.ts';

/**
 * The station's record per unit, from the collected reports: claim code, MACs, verdict
 * and failing checks per serial number. A report that does not verify, and every report
 * of a serial number or claim code that appears in more than one verified report, is recorded as
 * `rejected` with the reason, never as passed: the operator removes the stale report or
 * tests the unit again.
 */
export interface QaRecord {
  serialNumber: string;
  claimCode: string;
  macAddresses: string;
  profile: string;
  imageVersion: string;
  verdict: 'pass' | 'fail' | 'rejected';
  failingChecks: string[];
  /** Why the report was rejected. */
  problem: string;
  testedAt: string;
  reportFile: string;
}

export const QA_RECORDS_CSV = 'qa-records.csv';

export function buildQaRecords(collected: readonly CollectedReport[]): QaRecord[] {
  const records = collected.map((c): QaRecord => {
    const r = c.report;
    return {
      serialNumber: r?.serialNumber ?? '',
      claimCode: r?.claimCode ?? '',
      macAddresses: r?.macAddresses.map((m) => `${m.interface}=${m.address}`).join(' ') ?? '',
      profile: r?.profile ?? '',
      imageVersion: r?.imageVersion ?? '',
      verdict: c.ok ? c.report.verdict : 'rejected',
      failingChecks: r?.failingChecks ?? [],
      problem: c.ok ? '' : `${c.file} ${c.problem}`,
      testedAt: r?.endedAt ?? '',
      reportFile: c.file,
    };
  });
  // Only verified reports count as duplicates: a report that failed its signature must not push a genuine unit out.
  const verified = new Set(records.filter((r) => r.verdict !== 'rejected'));
  for (const [field, words] of [
    ['serialNumber', 'serial number'],
    ['claimCode', 'claim code'],
  ] as const) {
    const files = new Map<string, string[]>();
    for (const rec of verified) if (rec[field]) files.set(rec[field], [...(files.get(rec[field]) ?? []), rec.reportFile]);
    for (const rec of verified) {
      const same = files.get(rec[field]) ?? [];
      if (same.length < 2) continue;
      const problem = `${words} ${rec[field]} is in ${same.length} reports (${same.join(', ')}): keep only the unit's latest report, or test the unit again`;
      rec.verdict = 'rejected';
      rec.problem = rec.problem ? `${rec.problem}; ${problem}` : problem;
    }
  }
  return records.sort((a, b) => a.serialNumber.localeCompare(b.serialNumber) || a.reportFile.localeCompare(b.reportFile));
}

const CSV_COLUMNS: (keyof QaRecord)[] = ['serialNumber', 'claimCode', 'verdict', 'failingChecks', 'problem', 'macAddresses', 'profile', 'imageVersion', 'testedAt', 'reportFile'];

/** RFC 4180 CSV; a cell a spreadsheet would run as a formula (=, +, -, @) is prefixed with ' since serials come from devices. */
export function qaRecordsCsv(records: readonly QaRecord[]): string {
  const cell = (value: string | string[]) => {
    let text = Array.isArray(value) ? value.join(' ') : value;
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [CSV_COLUMNS.join(','), ...records.map((r) => CSV_COLUMNS.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** Writes qa-records.json and qa-records.csv into `dir` durably (temporary name, fsync, rename). */
export async function writeQaRecords(dir: string, records: readonly QaRecord[], now: Date = new Date()): Promise<{ json: string; csv: string }> {
  const json = join(dir, QA_RECORDS_JSON);
  const csv = join(dir, QA_RECORDS_CSV);
  await writeFileDurably(json, `${JSON.stringify({ generatedAt: now.toISOString(), records }, null, 2)}\n`, 0o644);
  await writeFileDurably(csv, qaRecordsCsv(records), 0o644);
  return { json, csv };
}
