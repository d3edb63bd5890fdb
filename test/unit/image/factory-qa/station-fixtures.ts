import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createUnitQaSettings } from '../../../../image/factory-qa/unit-qa-key.ts';
import { parseQaSettings, serializeQaReport, signQaReport, type QaReport } from '../../../../shared/contracts/qa-report.ts';

/** The recorded Pi 5 report (test/fixtures/factory-qa/report-pi5-pass.json), changed as a test needs. */
export function pi5Report(change: (r: QaReport) => void = () => {}): QaReport {
  const report = JSON.parse(readFileSync(fileURLToPath(new URL('../../../fixtures/factory-qa/report-pi5-pass.json', import.meta.url)), 'utf8')) as QaReport;
  change(report);
  return report;
}

/** A unit as the station flashes it (createUnitQaSettings): the key from its memu-qa.json, the public half in `keysDir`. */
export async function stationUnit(keysDir: string, claimCode: string): Promise<{ privateKey: KeyObject }> {
  const settings = parseQaSettings((await createUnitQaSettings(keysDir, claimCode, true)).settingsText);
  if (!settings.ok) throw new Error(settings.problems.join('; '));
  return { privateKey: settings.signingKey };
}

/** Writes a report and (unless told not to) its signature, as a unit leaves them for the station. */
export async function writeSignedReport(path: string, report: QaReport, key: KeyObject | undefined): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const bytes = Buffer.from(serializeQaReport(report));
  await writeFile(path, bytes);
  if (key) await writeFile(`${path}.sig`, signQaReport(bytes, key));
}
