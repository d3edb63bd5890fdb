import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  parseQaReport,
  parseQaSettings,
  serializeQaReport,
  signQaReport,
  verifyQaReport,
  type QaReport,
  type TrustedQaKey,
} from '../../../../shared/contracts/qa-report.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';

// The contract lives in shared/contracts/qa-report.ts; its tests sit with the QA module's
// (this session owns no test folder under test/unit/shared).
const fixture = (name: string) => readFileSync(fileURLToPath(new URL(`../../../fixtures/factory-qa/${name}`, import.meta.url)), 'utf8');
const report = (): QaReport => JSON.parse(fixture('report-pi5-pass.json')) as QaReport;

function unitKey(claimCode?: string): { trusted: TrustedQaKey; privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'] } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, trusted: { publicKey, keyId: keyIdOf(publicKey), claimCode, source: 'test' } };
}

describe('QA report contract', () => {
  it('accepts the recorded report and round-trips it through its file text', () => {
    const parsed = parseQaReport(fixture('report-pi5-pass.json'));
    expect(parsed).toEqual({ ok: true, report: report() });
    expect(parseQaReport(serializeQaReport(report()))).toEqual(parsed);
  });

  it('refuses a verdict or failing list that disagrees with the checks', () => {
    const r = report();
    r.checks[0]!.verdict = 'fail';
    expect(parseQaReport(JSON.stringify(r))).toEqual({
      ok: false,
      problems: ['verdict: is pass, but the checks say fail', 'failingChecks: does not list exactly the failed checks (memory-size)'],
    });
    r.verdict = 'fail';
    r.failingChecks = ['memory-size'];
    expect(parseQaReport(JSON.stringify(r)).ok).toBe(true);
  });

  it('refuses unknown fields, duplicate checks and a bad MAC address, naming each', () => {
    const r = report() as QaReport & { extra?: number };
    r.extra = 1;
    r.checks.push({ ...r.checks[0]! });
    r.macAddresses[0]!.address = '2C-CF-67-01-02-03';
    const parsed = parseQaReport(JSON.stringify(r));
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.problems.join('\n')).toMatch(/extra: not a known field/);
    expect(!parsed.ok && parsed.problems.join('\n')).toMatch(/checks: check memory-size appears more than once/);
    expect(!parsed.ok && parsed.problems.join('\n')).toMatch(/macAddresses\[0\]\.address: a lower-case MAC address/);
  });
});

describe('QA report signatures', () => {
  const bytes = Buffer.from(serializeQaReport(report()));

  it('a report signed with the unit key verifies against the station key made for its claim code', () => {
    const { privateKey, trusted } = unitKey('7K3M-Q9XD-2HFT-B8RW');
    const result = verifyQaReport(bytes, signQaReport(bytes, privateKey), [unitKey().trusted, trusted]);
    expect(result).toEqual({ ok: true, report: report(), keyId: trusted.keyId });
  });

  it('a tampered field fails the signature', () => {
    const { privateKey, trusted } = unitKey();
    const signature = signQaReport(bytes, privateKey);
    const tampered = Buffer.from(bytes.toString('utf8').replace('"measured": 8052', '"measured": 8053'));
    expect(tampered.equals(bytes)).toBe(false);
    expect(verifyQaReport(tampered, signature, [trusted])).toEqual({ ok: false, reason: 'its signature does not verify: signature does not match the signed file' });
  });

  it('a key the station did not make is refused by its key id', () => {
    const { privateKey } = unitKey();
    const stranger = keyIdOf(generateKeyPairSync('ed25519').publicKey);
    const station = unitKey().trusted;
    const result = verifyQaReport(bytes, signQaReport(bytes, privateKey), [station]);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/^is signed by key [0-9a-f]{16}, which is none of the station's 1 trusted keys$/);
    expect(stranger).not.toBe(station.keyId);
  });

  it("a unit key that signs another unit's claim code is refused", () => {
    const { privateKey, trusted } = unitKey('AAAA-BBBB-CCCC-DDDD');
    expect(verifyQaReport(bytes, signQaReport(bytes, privateKey), [trusted])).toEqual({
      ok: false,
      reason: 'is signed with the key made for claim code AAAA-BBBB-CCCC-DDDD but reports claim code 7K3M-Q9XD-2HFT-B8RW',
    });
  });

  it('a missing or garbled signature file is said as such', () => {
    const { trusted } = unitKey();
    expect(verifyQaReport(bytes, undefined, [trusted])).toEqual({ ok: false, reason: 'has no signature file (memu-qa-report.json.sig beside it)' });
    expect(verifyQaReport(bytes, 'not json', [trusted])).toEqual({ ok: false, reason: 'its signature file is not a memu-signature/1 signature file' });
  });

  it('refuses to sign with anything but an ed25519 key', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => signQaReport(bytes, privateKey)).toThrow('the QA signing key is a ec key; expected ed25519');
  });
});

describe('QA settings (station to unit)', () => {
  it('parses the unit key and never quotes it in a problem', () => {
    const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const parsed = parseQaSettings(JSON.stringify({ version: 1, signingKey: pem, reportToFat: true }));
    expect(parsed.ok && parsed.signingKey.asymmetricKeyType).toBe('ed25519');
    const broken = parseQaSettings(JSON.stringify({ version: 1, signingKey: pem.replace(/[A-Za-z0-9+/]{20}/, 'x'), reportToFat: true }));
    expect(broken).toEqual({ ok: false, problems: ['memu-qa.json: signingKey is not a PEM private key'] });
    const missing = parseQaSettings(JSON.stringify({ version: 1, signingKey: pem }));
    expect(missing).toEqual({ ok: false, problems: ['memu-qa.json: reportToFat: Required'] });
  });
});
