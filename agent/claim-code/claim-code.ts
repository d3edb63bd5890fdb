import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { normalizeClaimCode } from '../../shared/contracts/preseed.ts';

/**
 * The claim code: whoever opens the setup wizard must type the code printed on the
 * device's label (format in shared/contracts/preseed.ts). The device keeps only a salted
 * scrypt hash of a preseeded code, so a copy of the data partition does not give it away.
 *
 * Stored form, a PHC-style string: `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, salt and hash
 * in base64 without padding. New hashes use N = 2^15 (ln=15), r = 8, p = 1 (32 MiB and
 * about 0.15 s per hash on a 2-core x86-64), a 16-byte random salt and a 32-byte hash.
 * A random code has 80 bits and would need no slow hash; a preseeded one may have been
 * chosen by a person and be guessable, which is what the cost is for. Verification reads the
 * parameters from the stored string, so they can be raised later without a migration.
 */
const SCRYPT_LOG2_N = 15;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds for parameters read back from a stored hash, so a damaged file cannot ask for gigabytes. */
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;

const STORED_PATTERN = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 80 random bits as 4 groups of 4 Crockford base32 symbols. */
export function generateClaimCode(): string {
  const bytes = randomBytes(10);
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let symbols = '';
  for (let i = 15; i >= 0; i--) symbols += CROCKFORD[Number((bits >> BigInt(i * 5)) & 31n)];
  return symbols.match(/.{4}/g)!.join('-');
}

/** The stored form of a claim code (as printed, or as a person typed it). Throws when it cannot be a claim code. */
export async function hashClaimCode(code: string): Promise<string> {
  const canonical = normalizeClaimCode(code);
  if (!canonical) throw new Error('not a claim code: expected 4 groups of 4 Crockford base32 characters');
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(canonical, salt, HASH_BYTES, { N: 2 ** SCRYPT_LOG2_N, r: SCRYPT_R, p: SCRYPT_P });
  return `$scrypt$ln=${SCRYPT_LOG2_N},r=${SCRYPT_R},p=${SCRYPT_P}$${unpadded(salt)}$${unpadded(hash)}`;
}

/**
 * Whether what a person typed is the code behind `stored` (lower case, spaces and
 * Crockford's look-alikes are fine). Compares in constant time. Throws when `stored` is
 * not a hash made by hashClaimCode: a damaged record is a device fault, not a wrong code.
 */
export async function verifyClaimCode(code: string, stored: string): Promise<boolean> {
  const m = STORED_PATTERN.exec(stored.trim());
  const [log2N, r, p] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  const expected = Buffer.from(m?.[5] ?? '', 'base64');
  if (!m || log2N < 1 || log2N > MAX_LOG2_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P || expected.length < HASH_BYTES) {
    throw new Error('the stored claim code hash is not in the form $scrypt$ln=N,r=R,p=P$salt$hash');
  }
  const canonical = normalizeClaimCode(code);
  if (!canonical) return false; // says nothing about the stored code
  const actual = await scrypt(canonical, Buffer.from(m[4]!, 'base64'), expected.length, { N: 2 ** log2N, r, p });
  return timingSafeEqual(actual, expected);
}

function scrypt(password: string, salt: Buffer, keyLength: number, options: ScryptOptions & { N: number; r: number }): Promise<Buffer> {
  // Node refuses above 32 MiB by default; allow what these parameters need (128·N·r bytes).
  const maxmem = 2 * 128 * options.N * options.r;
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, keyLength, { ...options, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function unpadded(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}
