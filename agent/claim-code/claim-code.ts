import { normalizeClaimCode } from '../../shared/contracts/preseed.ts';
import { randomCrockfordCode } from '../../shared/crockford-code.ts';
import { hashSecret, StoredHashError, verifySecret } from '../secret-hash/index.ts';

/**
 * The claim code: whoever opens the setup wizard must type the code printed on the
 * device's label (format in shared/contracts/preseed.ts). The device keeps only a salted
 * scrypt hash of a preseeded code, so a copy of the data partition does not give it away.
 * The hash is secret-hash's scrypt. A random code has 80 bits and would need no slow
 * hash; a preseeded one may have been chosen by a person and be guessable, which is what
 * the cost is for.
 */
/** 80 random bits as 4 groups of 4 Crockford base32 symbols. */
export function generateClaimCode(): string {
  return randomCrockfordCode(4, 4);
}

/** The stored form of a claim code (as printed, or as a person typed it). Throws when it cannot be a claim code. */
export async function hashClaimCode(code: string): Promise<string> {
  const canonical = normalizeClaimCode(code);
  if (!canonical) throw new Error('not a claim code: expected 4 groups of 4 Crockford base32 characters');
  return hashSecret(canonical);
}

/**
 * Whether what a person typed is the code behind `stored` (lower case, spaces and
 * Crockford's look-alikes are fine). Compares in constant time. Throws when `stored` is
 * not a hash made by hashClaimCode: a damaged record is a device fault, not a wrong code.
 */
export async function verifyClaimCode(code: string, stored: string): Promise<boolean> {
  const canonical = normalizeClaimCode(code);
  const valid = await verifySecret(canonical ?? '', stored).catch((err: unknown) => {
    if (err instanceof StoredHashError) throw new Error('the stored claim code hash is not in the form $scrypt$ln=N,r=R,p=P$salt$hash');
    throw err;
  });
  // A malformed code says nothing about the stored one, but is still hashed: the time taken does not tell it apart.
  return canonical !== undefined && valid;
}
