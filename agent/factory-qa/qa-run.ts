import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  overallVerdict,
  qaReportSchema,
  QA_REPORT_FILE_NAME,
  QA_REPORT_FORMAT,
  QA_REPORT_SIGNATURE_FILE_NAME,
  serializeQaReport,
  signQaReport,
  type QaCheckResult,
  type QaReport,
} from '../../shared/contracts/qa-report.ts';
import type { FatVolume } from '../../shared/fat/fat-volume.ts';
import { writeFileDurably } from '../../shared/files/durable-files.ts';
import { formatZodIssues } from '../../shared/errors.ts';
import { evaluateIdentity, type IdentityFacts } from './checks/identity.ts';
import type { QaCheckOutcome } from './checks/qa-check.ts';
import type { QaStep } from './qa-steps.ts';

/** Where the report lives on the data partition; the factory-fresh cleanup keeps this folder's report. */
export function factoryQaPaths(dataDir: string) {
  const dir = join(dataDir, 'factory-qa');
  return { dir, report: join(dir, QA_REPORT_FILE_NAME), signature: join(dir, QA_REPORT_SIGNATURE_FILE_NAME) };
}

export interface QaRunOptions {
  profile: string;
  imageVersion: string;
  claimCode?: string;
  readIdentity: () => Promise<IdentityFacts>;
  boardModelPattern: string;
  steps: readonly QaStep[];
  /** This unit's QA key from the station's settings. */
  signingKey: KeyObject;
  dataDir: string;
  /** The first FAT partition, when the station asked for the report there too. */
  fat?: FatVolume;
  log: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
  /** Tests: named points (`after-data-report`) to cut the run off, as a power cut would. */
  checkpoint?: (point: string) => void | Promise<void>;
  /** Told after each step, for a live view (the HDMI console, the API). */
  onProgress?: (done: readonly QaCheckResult[], next: string | undefined) => void;
}

export interface QaRunResult {
  report: QaReport;
  reportPath: string;
  /** Why the copy on the FAT could not be written (the report is on the data partition all the same). */
  fatProblem?: string;
}

/**
 * The factory QA run: reads who the unit is, runs every step in order with its timeout
 * (a step that times out or throws fails its check, naming why, and the run goes on),
 * builds the report, signs it with the unit's QA key and writes both files durably to the
 * data partition and, when asked, to the first FAT partition for the station.
 */
export async function runFactoryQa(o: QaRunOptions): Promise<QaRunResult> {
  const now = o.now ?? Date.now;
  const startedAt = now();
  const checks: QaCheckResult[] = [];
  let identity: IdentityFacts = { macAddresses: [] };
  const identityStep: QaStep = {
    name: 'identity',
    timeoutMs: 5_000,
    run: async () => {
      identity = await o.readIdentity();
      return [...evaluateIdentity(identity, o.boardModelPattern), evaluateClaimCode(o.claimCode)];
    },
  };
  const steps = [identityStep, ...o.steps];
  for (const [i, step] of steps.entries()) {
    const began = now();
    const outcomes = await runStep(step, now);
    const took = Math.max(0, Math.round(now() - began));
    for (const outcome of outcomes) checks.push({ ...outcome, durationMs: outcome.durationMs ?? took });
    for (const failedCheck of outcomes.filter((c) => c.verdict === 'fail')) o.log.warn({ check: failedCheck.check }, failedCheck.reason);
    o.onProgress?.(checks, steps[i + 1]?.name);
  }
  const firstMac = identity.macAddresses[0]?.address.replace(/:/g, '');
  const report: QaReport = {
    format: QA_REPORT_FORMAT,
    serialNumber: identity.serialNumber ?? `unknown-${firstMac ?? 'no-mac'}`,
    macAddresses: identity.macAddresses,
    profile: o.profile,
    imageVersion: o.imageVersion,
    ...(o.claimCode ? { claimCode: o.claimCode } : {}),
    startedAt: new Date(startedAt).toISOString(),
    endedAt: new Date(now()).toISOString(),
    checks,
    verdict: overallVerdict(checks),
    failingChecks: checks.filter((c) => c.verdict === 'fail').map((c) => c.check),
  };
  // A report the station would refuse is a bug here (two steps naming the same check): fail loudly.
  const valid = qaReportSchema.safeParse(report);
  if (!valid.success) throw new Error(`the QA report is invalid: ${formatZodIssues(valid.error.issues).join('; ')}`);
  const bytes = Buffer.from(serializeQaReport(report));
  const signature = signQaReport(bytes, o.signingKey);
  const paths = factoryQaPaths(o.dataDir);
  await writeFileDurably(paths.report, bytes, 0o644);
  await writeFileDurably(paths.signature, signature, 0o644);
  o.log.info({ verdict: report.verdict, failing: report.failingChecks, report: paths.report }, `factory QA ${report.verdict === 'pass' ? 'PASSED' : 'FAILED'}`);
  await o.checkpoint?.('after-data-report');
  let fatProblem: string | undefined;
  if (o.fat) {
    try {
      // The report first: a signature without its report is never left as the only file.
      await o.fat.writeFileAtomic(QA_REPORT_FILE_NAME, 'memu-qa-report.tmp', bytes);
      await o.fat.writeFileAtomic(QA_REPORT_SIGNATURE_FILE_NAME, 'memu-qa-report.sig.tmp', Buffer.from(signature));
    } catch (err) {
      fatProblem = (err as Error).message;
      o.log.warn({ err: fatProblem }, 'the QA report could not be left on the FAT partition for the station');
    }
  }
  return { report, reportPath: paths.report, ...(fatProblem ? { fatProblem } : {}) };
}

/** The label needs the claim code the station put in the preseed; without one the unit cannot be labelled or claimed. */
function evaluateClaimCode(claimCode: string | undefined): QaCheckOutcome {
  if (claimCode) return { check: 'claim-code', verdict: 'pass', measured: true, unit: '', threshold: { expected: true }, reason: 'The preseed carries the claim code for the label.' };
  return { check: 'claim-code', verdict: 'fail', measured: false, unit: '', threshold: { expected: true }, reason: "The preseed carries no valid claim code, so the unit cannot be labelled: check the station's preseed for this drive." };
}

async function runStep(step: QaStep, now: () => number): Promise<QaCheckOutcome[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), step.timeoutMs);
  });
  const began = now();
  try {
    const result = await Promise.race([step.run(), timeout]);
    if (result === 'timeout') {
      return [{ check: step.name, verdict: 'fail', measured: null, unit: '', reason: `The ${step.name} check did not finish within ${step.timeoutMs >= 1000 ? `${Math.round(step.timeoutMs / 1000)} s` : `${step.timeoutMs} ms`}.`, durationMs: Math.round(now() - began) }];
    }
    return result;
  } catch (err) {
    return [{ check: step.name, verdict: 'fail', measured: null, unit: '', reason: `The ${step.name} check broke: ${(err as Error).message}` }];
  } finally {
    clearTimeout(timer);
  }
}
