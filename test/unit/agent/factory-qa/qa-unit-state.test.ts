import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseQaSettings, parseQaUnitState, QA_UNIT_STATE_MAX_BYTES, stationUrlProblem } from '../../../../shared/contracts/qa-report.ts';

// The bench LAN's part of the QA contract (shared/contracts/qa-report.ts): the station URL
// in memu-qa.json and the message a unit sends. Beside the report's tests, as the contract's
// other tests are.

const CODE = '7K3M-Q9XD-2HFT-B8RW';
const b64 = (text: string) => Buffer.from(text).toString('base64');
const message = (fields: Record<string, unknown>) => JSON.stringify({ format: 'memu-qa-unit-state/1', claimCode: CODE, ...fields });

describe('the unit state message', () => {
  it('accepts testing with its progress, done with the report and signature, and error with why', () => {
    expect(parseQaUnitState(message({ state: 'testing', step: 'disk-speed', checksDone: 11, stepsDone: 5, stepsTotal: 13, serialNumber: 'a1b2' }))).toMatchObject({ ok: true, state: { state: 'testing', step: 'disk-speed', checksDone: 11 } });
    expect(parseQaUnitState(message({ state: 'done', checksDone: 22, checksTotal: 22, report: b64('{"a":1}\n'), signature: b64('{}') }))).toMatchObject({ ok: true, state: { state: 'done' } });
    expect(parseQaUnitState(Buffer.from(message({ state: 'error', reason: 'memu-qa.json: signingKey is not a PEM private key' })))).toMatchObject({ ok: true, state: { state: 'error' } });
  });

  it('refuses what is not the contract, saying what is wrong', () => {
    expect(parseQaUnitState('not json')).toEqual({ ok: false, problems: ['is not JSON'] });
    expect(parseQaUnitState(message({ state: 'done' }))).toEqual({ ok: false, problems: ['report: a done state carries the report and its signature'] });
    expect(parseQaUnitState(message({ state: 'testing', report: b64('{}') }))).toEqual({ ok: false, problems: ['report: a testing state carries no report'] });
    expect(parseQaUnitState(message({ state: 'done', report: 'not base64!', signature: b64('{}') }))).toEqual({ ok: false, problems: ['report: is not base64'] });
    expect(parseQaUnitState(JSON.stringify({ format: 'memu-qa-unit-state/1', claimCode: 'hello', state: 'testing' })).ok).toBe(false);
    expect(parseQaUnitState(message({ state: 'passed' })).ok).toBe(false);
    expect(parseQaUnitState(message({ state: 'testing', admin: true }))).toEqual({ ok: false, problems: ['admin: not a known field'] });
  });

  it('refuses an oversized message before parsing it, and a report over its bound', () => {
    const huge = message({ state: 'testing', step: 'x'.repeat(QA_UNIT_STATE_MAX_BYTES) });
    expect(parseQaUnitState(huge)).toEqual({ ok: false, problems: [`is ${Buffer.byteLength(huge)} bytes, more than the ${QA_UNIT_STATE_MAX_BYTES} a unit state may be`] });
    const bigReport = parseQaUnitState(message({ state: 'done', report: 'A'.repeat(360_000), signature: b64('{}') }));
    expect(bigReport).toEqual({ ok: false, problems: ['report: is longer than the base64 of 262144 bytes'] });
  });
});

describe('the station URL', () => {
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const settings = (stationUrl: string) => parseQaSettings(JSON.stringify({ version: 1, signingKey: pem, reportToFat: true, stationUrl }));

  it('takes http://HOST:PORT into memu-qa.json', () => {
    expect(settings('http://10.0.2.2:8470')).toMatchObject({ ok: true, settings: { stationUrl: 'http://10.0.2.2:8470' } });
    expect(settings('http://station.local:8470/')).toMatchObject({ ok: true });
    expect(stationUrlProblem('http://192.168.50.1:8470')).toBeUndefined();
  });

  it('refuses https, credentials, a path and what is not a URL, without quoting it', () => {
    expect(stationUrlProblem('https://station:8470')).toBe('is https:, but a unit reaches the station over plain http: give http://HOST:PORT');
    expect(stationUrlProblem('http://qa:secret@station:8470')).toBe('carries credentials: the station takes no user or password; give http://HOST:PORT');
    expect(stationUrlProblem('http://station:8470/qa/units')).toBe('has a path, query or fragment: give only http://HOST:PORT, the unit adds /qa/units/<claim code>');
    expect(stationUrlProblem('http://station:8470/?x=1')).toMatch(/^has a path/);
    expect(stationUrlProblem('station:8470')).toMatch(/^is station:/);
    expect(stationUrlProblem('not a url')).toBe("is not a URL: give the station's address as http://HOST:PORT");
    const refused = settings('http://qa:secret@station:8470');
    expect(refused).toEqual({ ok: false, problems: ['memu-qa.json: stationUrl: carries credentials: the station takes no user or password; give http://HOST:PORT'] });
    expect(JSON.stringify(refused)).not.toContain('secret');
  });
});
