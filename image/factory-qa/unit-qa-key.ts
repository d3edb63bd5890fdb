import { generateKeyPairSync } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeClaimCode } from '../../shared/contracts/preseed.ts';
import { type QaSettings } from '../../shared/contracts/qa-report.ts';
import { keyIdOf } from '../../shared/contracts/signature.ts';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * What the station does for each drive it flashes for QA: a fresh ed25519 key pair for that
 * unit alone. The public half is kept in the station's keys directory under the unit's
 * claim code (what `memu qa records --keys` trusts); the private half goes into the drive's
 * `memu-qa.json`, and nowhere else.
 */
export async function createUnitQaSettings(
  keysDir: string,
  claimCode: string,
  reportToFat: boolean,
  /** Where the unit also sends its progress and report (`memu qa station watch`); checked by the caller with stationUrlProblem. */
  stationUrl?: string,
): Promise<{ settingsText: string; publicKeyPath: string; keyId: string }> {
  if (normalizeClaimCode(claimCode) !== claimCode) throw new MemuError(`"${claimCode}" is not a claim code as printed`, ExitCode.badInput, 'claim codes are 4 groups of 4 Crockford base32 characters in capitals');
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  const publicKeyPath = join(keysDir, `${claimCode}.pub`);
  if (!(await writeFileAtomic(publicKeyPath, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, noReplace: true }))) {
    throw new MemuError(`${publicKeyPath} exists: claim code ${claimCode} was already given to a unit`, ExitCode.badInput, 'generate a new claim code for this unit');
  }
  const settings: QaSettings = { version: 1, signingKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), reportToFat, ...(stationUrl ? { stationUrl } : {}) };
  return { settingsText: `${JSON.stringify(settings, null, 2)}\n`, publicKeyPath, keyId: keyIdOf(publicKey) };
}
