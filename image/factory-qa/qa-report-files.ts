import { readdir, readFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { loadPublicKey, keyIdOf } from '../../shared/contracts/signature.ts';
import { normalizeClaimCode, PRESEED_FILE_NAME } from '../../shared/contracts/preseed.ts';
import { parseQaReport, QA_SETTINGS_FILE_NAME, verifyQaReport, type QaReport, type TrustedQaKey } from '../../shared/contracts/qa-report.ts';
import { ignoreNotFound } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * The station's side of QA reports: the keys it trusts and the reports it collected,
 * each verified. A report is a `*.json` file with its detached `<file>.sig` beside it,
 * anywhere below the directory (one folder per slot or unit is fine).
 */

/** The station's records file (qa-records.ts writes it beside the reports by default). */
export const QA_RECORDS_JSON = 'qa-records.json';
/** JSON files that are never reports: the station's records, and the preseed and QA settings of a FAT copied whole. */
const NOT_REPORTS = new Set([QA_RECORDS_JSON, PRESEED_FILE_NAME, QA_SETTINGS_FILE_NAME]);

export type CollectedReport =
  | { file: string; ok: true; report: QaReport; keyId: string }
  /** `report` is the unverified content when it parses, so the record can still name the unit. */
  | { file: string; ok: false; problem: string; report?: QaReport };

/**
 * The station's trusted keys: every `*.pub` in `dir`. A key named after a claim code
 * (`7K3M-Q9XD-2HFT-B8RW.pub`) was made for that one unit and verifies only its report.
 */
export async function loadTrustedQaKeys(dir: string): Promise<TrustedQaKey[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot read the trusted keys directory ${dir}: ${err.code ?? err.message}`, ExitCode.badInput, 'pass --keys DIR, the directory of .pub files the station made when it flashed the units');
  });
  const keys: TrustedQaKey[] = [];
  for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
    const path = join(dir, name);
    let publicKey;
    try {
      publicKey = loadPublicKey(await readFile(path));
    } catch (err) {
      throw new MemuError(`${path} is not an ed25519 public key: ${(err as Error).message}`, ExitCode.badInput, 'remove it from the keys directory, or replace it with the .pub the station made');
    }
    // Only a name that is a claim code as printed binds the key to that unit.
    const stem = basename(name, '.pub');
    keys.push({ publicKey, keyId: keyIdOf(publicKey), source: path, ...(normalizeClaimCode(stem) === stem ? { claimCode: stem } : {}) });
  }
  if (keys.length === 0) throw new MemuError(`${dir} holds no .pub keys`, ExitCode.badInput, 'pass --keys DIR, the directory of .pub files the station made when it flashed the units');
  return keys;
}

/** Every report file below `dir`, sorted by path. */
export async function findReportFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot read the reports directory ${dir}: ${err.code ?? err.message}`, ExitCode.badInput, 'pass the directory the station collected the reports into');
  });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith('.json') && !NOT_REPORTS.has(e.name.toLowerCase()))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}

export async function collectReports(dir: string, trusted: readonly TrustedQaKey[]): Promise<CollectedReport[]> {
  const collected: CollectedReport[] = [];
  for (const path of await findReportFiles(dir)) {
    const file = relative(dir, path);
    const bytes = await readFile(path);
    const signature = await readFile(`${path}.sig`, 'utf8').catch(ignoreNotFound);
    const verified = verifyQaReport(bytes, signature, trusted);
    if (verified.ok) {
      collected.push({ file, ok: true, report: verified.report, keyId: verified.keyId });
    } else {
      const parsed = parseQaReport(bytes.toString('utf8'));
      collected.push({ file, ok: false, problem: verified.reason, ...(parsed.ok ? { report: parsed.report } : {}) });
    }
  }
  return collected;
}

/** Reads reports without verifying them (threshold suggestions from an engineer's own measurements); a file that is not a report is an error naming it. */
export async function readReportsUnverified(paths: readonly string[]): Promise<QaReport[]> {
  const reports: QaReport[] = [];
  for (const path of paths) {
    const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new MemuError(`cannot read ${path}: ${err.code ?? err.message}`, ExitCode.badInput, 'pass QA report files (memu-qa-report.json)');
    });
    const parsed = parseQaReport(text);
    if (!parsed.ok) throw new MemuError(`${path} is not a QA report: ${parsed.problems.join('; ')}`, ExitCode.badInput, 'pass QA report files (memu-qa-report.json)');
    reports.push(parsed.report);
  }
  return reports;
}
