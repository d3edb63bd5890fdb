import { createPrivateKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { formatZodIssues } from '../errors.ts';
import { detachedSignatureText, keyIdOf, SIGNATURE_FORMAT, verifyDetached } from './signature.ts';

/**
 * Factory QA: what a unit on the bench reports about its hardware, and how the station
 * knows the report is that unit's own.
 *
 * Trust: a key the device makes for itself at QA start proves nothing (anything can make
 * a key). Instead the station makes one ed25519 key pair per unit when it flashes the
 * drive: the private half goes into that drive's QA settings file (QA_SETTINGS_FILE_NAME,
 * on the first FAT partition, removed with everything else QA used), the public half stays
 * on the station, named after the unit's claim code. A report verifies only against a key
 * the station made, and the station checks that the key it made for claim code X signed
 * the report that names claim code X. A leaked key forges at most that one unit's report;
 * a single factory-wide key on every drive would let one lost drive forge them all.
 *
 * The report travels as two files, the report JSON and a detached memu-signature/1 file
 * (shared/contracts/signature.ts) over its exact bytes: on the data partition, and on the
 * first FAT partition when the station asks, where it reads them back.
 */
export const QA_REPORT_FORMAT = 'memu-qa-report/1';
export const QA_REPORT_FILE_NAME = 'memu-qa-report.json';
export const QA_REPORT_SIGNATURE_FILE_NAME = `${QA_REPORT_FILE_NAME}.sig`;
/** The station's per-unit QA settings on the first FAT partition, beside memu-preseed.json. */
export const QA_SETTINGS_FILE_NAME = 'memu-qa.json';
export const QA_SETTINGS_TEMP_FILE_NAME = 'memu-qa.tmp';
export const QA_SETTINGS_MAX_BYTES = 16 * 1024;

const CHECK_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/;
const CLAIM_CODE = /^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/;

/** pass / fail, or skipped with the reason (the profile has no such part, the image lacks the tool). */
export const qaVerdictSchema = z.enum(['pass', 'fail', 'skipped']);
export type QaVerdict = z.infer<typeof qaVerdictSchema>;

/** What a measurement is held against: a lower bound, an upper bound, or an expected value. */
export const qaThresholdSchema = z
  .object({
    min: z.number().optional(),
    max: z.number().optional(),
    expected: z.union([z.string(), z.number(), z.boolean()]).optional(),
  })
  .strict();
export type QaThreshold = z.infer<typeof qaThresholdSchema>;

export const qaCheckResultSchema = z
  .object({
    /** A stable name for machines: `memory-size`, `disk-write-speed`. */
    check: z.string().regex(CHECK_NAME, 'a lower-case name with hyphens'),
    verdict: qaVerdictSchema,
    /** What was measured (null when nothing could be); numbers are in `unit`. */
    measured: z.union([z.number(), z.string(), z.boolean(), z.null()]),
    /** `MiB`, `MB/s`, `°C`, `GT/s`…; empty when the value has none. */
    unit: z.string(),
    threshold: qaThresholdSchema.optional(),
    /** For the bench operator: what was found and why it passed, failed or was skipped. */
    reason: z.string().min(1),
    durationMs: z.number().int().nonnegative(),
  })
  .strict();
export type QaCheckResult = z.infer<typeof qaCheckResultSchema>;

export const macAddressSchema = z
  .object({
    interface: z.string().min(1),
    address: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, 'a lower-case MAC address such as 2c:cf:67:01:02:03'),
  })
  .strict();

export const qaReportSchema = z
  .object({
    format: z.literal(QA_REPORT_FORMAT),
    serialNumber: z.string().min(1).max(128),
    macAddresses: z.array(macAddressSchema),
    /** The hardware profile the image was built for (`pi5`, `nuc`). */
    profile: z.string().regex(/^[a-z0-9-]+$/),
    imageVersion: z.string().min(1),
    /**
     * The claim code the station put in this unit's preseed: it is printed on the label,
     * so the record needs it, and anyone holding the box reads it off the label anyway.
     */
    claimCode: z.string().regex(CLAIM_CODE, 'a claim code: 4 groups of 4 Crockford base32 characters').optional(),
    startedAt: z.string().datetime(),
    endedAt: z.string().datetime(),
    checks: z.array(qaCheckResultSchema).min(1),
    /** fail when any check failed; skipped checks do not fail a unit. */
    verdict: z.enum(['pass', 'fail']),
    /** The names of the failed checks, in run order (what the bench shows). */
    failingChecks: z.array(z.string()),
  })
  .strict()
  .superRefine((r, ctx) => {
    const names = r.checks.map((c) => c.check);
    const duplicate = names.find((n, i) => names.indexOf(n) !== i);
    if (duplicate) ctx.addIssue({ code: 'custom', path: ['checks'], message: `check ${duplicate} appears more than once` });
    const failing = r.checks.filter((c) => c.verdict === 'fail').map((c) => c.check);
    if (r.verdict !== overallVerdict(r.checks)) ctx.addIssue({ code: 'custom', path: ['verdict'], message: `is ${r.verdict}, but the checks say ${overallVerdict(r.checks)}` });
    if (failing.join(',') !== r.failingChecks.join(',')) ctx.addIssue({ code: 'custom', path: ['failingChecks'], message: `does not list exactly the failed checks (${failing.join(', ') || 'none'})` });
    if (Date.parse(r.endedAt) < Date.parse(r.startedAt)) ctx.addIssue({ code: 'custom', path: ['endedAt'], message: 'is before startedAt' });
  });
export type QaReport = z.infer<typeof qaReportSchema>;

export function overallVerdict(checks: readonly Pick<QaCheckResult, 'verdict'>[]): 'pass' | 'fail' {
  return checks.some((c) => c.verdict === 'fail') ? 'fail' : 'pass';
}

/** The report's file text: the bytes that are signed, stored and sent. */
export function serializeQaReport(report: QaReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

export type QaReportParse = { ok: true; report: QaReport } | { ok: false; problems: string[] };

export function parseQaReport(text: string): QaReportParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problems: ['is not JSON'] };
  }
  const result = qaReportSchema.safeParse(value);
  return result.success ? { ok: true, report: result.data } : { ok: false, problems: formatZodIssues(result.error.issues) };
}

/** The text of the detached signature file for a report's bytes, made with the unit's QA key. */
export function signQaReport(reportBytes: Buffer, privateKey: KeyObject): string {
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the QA signing key is a ${privateKey.asymmetricKeyType} key; expected ed25519`);
  return detachedSignatureText(reportBytes, privateKey);
}

/** A key the station trusts, with the claim code of the unit it was made for (when it was made for one). */
export interface TrustedQaKey {
  publicKey: KeyObject;
  keyId: string;
  claimCode?: string;
  /** Where it came from, for messages. */
  source: string;
}

export type QaReportVerification = { ok: true; report: QaReport; keyId: string } | { ok: false; reason: string };

/**
 * Checks a report's signature against the station's keys, then its content: which key
 * signed it (by the signature's key id), that the signature matches the exact bytes, that
 * the report is valid, and that a key made for one unit signed that unit's report.
 */
export function verifyQaReport(reportBytes: Buffer, signatureText: string | undefined, trusted: readonly TrustedQaKey[]): QaReportVerification {
  if (signatureText === undefined) return { ok: false, reason: `has no signature file (${QA_REPORT_SIGNATURE_FILE_NAME} beside it)` };
  let keyId: string | undefined;
  try {
    keyId = (JSON.parse(signatureText) as { keyId?: unknown }).keyId as string | undefined;
  } catch {
    return { ok: false, reason: `its signature file is not a ${SIGNATURE_FORMAT} signature file` };
  }
  const key = trusted.find((k) => k.keyId === keyId);
  if (!key) return { ok: false, reason: `is signed by key ${String(keyId)}, which is none of the station's ${trusted.length} trusted keys` };
  const check = verifyDetached(reportBytes, signatureText, key.publicKey);
  if (!check.ok) return { ok: false, reason: `its signature does not verify: ${check.reason}` };
  const parsed = parseQaReport(reportBytes.toString('utf8'));
  if (!parsed.ok) return { ok: false, reason: `is signed but not a valid QA report: ${parsed.problems.join('; ')}` };
  if (key.claimCode && parsed.report.claimCode !== key.claimCode) {
    return { ok: false, reason: `is signed with the key made for claim code ${key.claimCode} but reports claim code ${parsed.report.claimCode ?? '(none)'}` };
  }
  return { ok: true, report: parsed.report, keyId: check.keyId };
}

/**
 * Where a unit tells the station how its QA run goes (`stationUrl` in QA_SETTINGS_FILE_NAME):
 * the station's own address on the bench LAN, `http://host:port`. Plain HTTP on purpose:
 * the bench LAN is the factory's, the unit has no certificate to check the station
 * against, and what it sends needs no secrecy (the claim code is printed on the label) and
 * no trust in the channel (the report carries its own signature). No credentials and no
 * path: the unit adds `/qa/units/<claim code>` itself.
 */
export const stationUrlSchema = z.string().superRefine((text, ctx) => {
  const problem = stationUrlProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** What is wrong with a station URL, worded without quoting it (it could carry a password); undefined when it is one. */
export function stationUrlProblem(text: string): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return "is not a URL: give the station's address as http://HOST:PORT";
  }
  if (url.protocol !== 'http:') return `is ${url.protocol}, but a unit reaches the station over plain http: give http://HOST:PORT`;
  if (url.username || url.password) return 'carries credentials: the station takes no user or password; give http://HOST:PORT';
  if (url.pathname !== '/' || url.search || url.hash) return 'has a path, query or fragment: give only http://HOST:PORT, the unit adds /qa/units/<claim code>';
  return undefined;
}

/** What the station tells one unit about its QA run (QA_SETTINGS_FILE_NAME on the first FAT partition). */
export const qaSettingsSchema = z
  .object({
    version: z.literal(1),
    /** This unit's ed25519 QA signing key, PKCS#8 PEM, made by the station for this unit only. */
    signingKey: z.string().includes('PRIVATE KEY'),
    /** Also leave the signed report on the first FAT partition for the station to read back. */
    reportToFat: z.boolean(),
    /** Also send the run's progress and the signed report to the station on the bench LAN (best effort; the FAT copy stays). */
    stationUrl: stationUrlSchema.optional(),
  })
  .strict();
export type QaSettings = z.infer<typeof qaSettingsSchema>;

export type QaSettingsParse = { ok: true; settings: QaSettings; signingKey: KeyObject } | { ok: false; problems: string[] };

/** Parses the station's QA settings; problems never quote the key. */
export function parseQaSettings(text: string): QaSettingsParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problems: [`${QA_SETTINGS_FILE_NAME} is not JSON`] };
  }
  const result = qaSettingsSchema.safeParse(value);
  if (!result.success) return { ok: false, problems: formatZodIssues(result.error.issues).map((p) => `${QA_SETTINGS_FILE_NAME}: ${p}`) };
  let signingKey: KeyObject;
  try {
    signingKey = createPrivateKey(result.data.signingKey);
  } catch {
    return { ok: false, problems: [`${QA_SETTINGS_FILE_NAME}: signingKey is not a PEM private key`] };
  }
  if (signingKey.asymmetricKeyType !== 'ed25519') return { ok: false, problems: [`${QA_SETTINGS_FILE_NAME}: signingKey is a ${signingKey.asymmetricKeyType} key; expected ed25519`] };
  return { ok: true, settings: result.data, signingKey };
}

/**
 * What a unit sends the station while it is tested (`POST <stationUrl>/qa/units/<claim
 * code>`, JSON): `testing` when the run starts and after each step, then `done` with the
 * signed report (base64 of exactly the bytes written to the FAT, and of its detached
 * signature file), or `error` when QA could not run. The station trusts none of it but the
 * report, and that only after verifying its signature against the key it made for the unit.
 */
export const QA_UNIT_STATE_FORMAT = 'memu-qa-unit-state/1';
/** The report is about 10 KB on a real unit; a bound keeps a stray client from filling the station's memory or disk. */
export const QA_UNIT_STATE_REPORT_MAX_BYTES = 256 * 1024;
export const QA_UNIT_STATE_SIGNATURE_MAX_BYTES = 4 * 1024;
/** A whole message: the report and signature in base64 (4/3 of their size) and the rest. */
export const QA_UNIT_STATE_MAX_BYTES = 512 * 1024;

const base64Of = (maxBytes: number) =>
  z
    .string()
    .max(Math.ceil(maxBytes / 3) * 4, `is longer than the base64 of ${maxBytes} bytes`)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'is not base64');

export const qaUnitStateSchema = z
  .object({
    format: z.literal(QA_UNIT_STATE_FORMAT),
    claimCode: z.string().regex(CLAIM_CODE, 'a claim code: 4 groups of 4 Crockford base32 characters'),
    serialNumber: z.string().min(1).max(128).optional(),
    state: z.enum(['testing', 'done', 'error']),
    /** The step running now (testing), or the one that ended the run. */
    step: z.string().max(64).optional(),
    /** Check results recorded so far. */
    checksDone: z.number().int().nonnegative().max(1000).optional(),
    /** Known once the run is over (the steps decide how many checks they report). */
    checksTotal: z.number().int().nonnegative().max(1000).optional(),
    /** Steps finished, and how many the run has: the progress while testing. */
    stepsDone: z.number().int().nonnegative().max(1000).optional(),
    stepsTotal: z.number().int().nonnegative().max(1000).optional(),
    /** Why QA could not run (error). */
    reason: z.string().max(2000).optional(),
    /** base64 of memu-qa-report.json's bytes (done). */
    report: base64Of(QA_UNIT_STATE_REPORT_MAX_BYTES).optional(),
    /** base64 of memu-qa-report.json.sig's bytes (done). */
    signature: base64Of(QA_UNIT_STATE_SIGNATURE_MAX_BYTES).optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.state === 'done' && (m.report === undefined || m.signature === undefined)) ctx.addIssue({ code: 'custom', path: ['report'], message: 'a done state carries the report and its signature' });
    if (m.state !== 'done' && (m.report !== undefined || m.signature !== undefined)) ctx.addIssue({ code: 'custom', path: ['report'], message: `a ${m.state} state carries no report` });
  });
export type QaUnitState = z.infer<typeof qaUnitStateSchema>;

export type QaUnitStateParse = { ok: true; state: QaUnitState } | { ok: false; problems: string[] };

/** Parses a unit's message from its raw body; the size is checked first, so nothing larger is ever parsed. */
export function parseQaUnitState(body: string | Buffer): QaUnitStateParse {
  const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (size > QA_UNIT_STATE_MAX_BYTES) return { ok: false, problems: [`is ${size} bytes, more than the ${QA_UNIT_STATE_MAX_BYTES} a unit state may be`] };
  let value: unknown;
  try {
    value = JSON.parse(body.toString());
  } catch {
    return { ok: false, problems: ['is not JSON'] };
  }
  const result = qaUnitStateSchema.safeParse(value);
  return result.success ? { ok: true, state: result.data } : { ok: false, problems: formatZodIssues(result.error.issues) };
}
