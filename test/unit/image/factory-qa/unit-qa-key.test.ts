import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadTrustedQaKeys } from '../../../../image/factory-qa/qa-report-files.ts';
import { createUnitQaSettings } from '../../../../image/factory-qa/unit-qa-key.ts';
import { parseQaSettings, serializeQaReport, signQaReport, verifyQaReport } from '../../../../shared/contracts/qa-report.ts';
import { pi5Report } from './station-fixtures.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memu-qa-unit-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('per-unit QA keys', () => {
  it("the unit signs with the key in its settings; the station's key for its claim code verifies it", async () => {
    const made = await createUnitQaSettings(join(dir, 'keys'), '7K3M-Q9XD-2HFT-B8RW', true);
    expect(await readdir(join(dir, 'keys'))).toEqual(['7K3M-Q9XD-2HFT-B8RW.pub']);
    const settings = parseQaSettings(made.settingsText);
    if (!settings.ok) throw new Error(settings.problems.join('; '));
    expect(settings.settings.reportToFat).toBe(true);
    const bytes = Buffer.from(serializeQaReport(pi5Report()));
    const trusted = await loadTrustedQaKeys(join(dir, 'keys'));
    expect(trusted).toMatchObject([{ keyId: made.keyId, claimCode: '7K3M-Q9XD-2HFT-B8RW' }]);
    expect(verifyQaReport(bytes, signQaReport(bytes, settings.signingKey), trusted)).toMatchObject({ ok: true, keyId: made.keyId });
  });

  it('refuses a claim code given twice, and one that is not as printed', async () => {
    await createUnitQaSettings(join(dir, 'keys'), '7K3M-Q9XD-2HFT-B8RW', false);
    await expect(createUnitQaSettings(join(dir, 'keys'), '7K3M-Q9XD-2HFT-B8RW', false)).rejects.toThrow('claim code 7K3M-Q9XD-2HFT-B8RW was already given to a unit');
    await expect(createUnitQaSettings(join(dir, 'keys'), '7k3m-q9xd-2hft-b8rw', false)).rejects.toThrow('is not a claim code as printed');
  });
});
