import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Slow salted hashes of secrets people type (the claim code, the admin's password), with
 * scrypt from Node's crypto. Stored form, a PHC-style string:
 * `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, salt and hash in base64 without padding. New
 * hashes use N = 2^15 (ln=15), r = 8, p = 1 (32 MiB and about 0.15 s per hash on a 2-core
 * x86-64; OWASP's minimum for scrypt is N = 2^17 with r = 8 at p = 1 or its equivalent in
 * cost, which a Pi would feel at every sign-in), a 16-byte random salt and a 32-byte hash.
 * Verification reads the parameters from the stored string, so they can be raised later
 * without a migration.
 */
const SCRYPT_LOG2_N = 15;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Bounds for parameters read back from a stored hash, so a damaged record cannot ask for gigabytes. */
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;

const STORED_PATTERN = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

export class StoredHashError extends Error {
  override name = 'StoredHashError';
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scrypt(secret, salt, HASH_BYTES, { N: 2 ** SCRYPT_LOG2_N, r: SCRYPT_R, p: SCRYPT_P });
  return `$scrypt$ln=${SCRYPT_LOG2_N},r=${SCRYPT_R},p=${SCRYPT_P}$${unpadded(salt)}$${unpadded(hash)}`;
}

/**
 * Whether `secret` is the one behind `stored`, compared in constant time. Throws
 * StoredHashError when `stored` is not a hash made by hashSecret: a damaged record is a
 * device fault, not a wrong secret.
 */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const m = STORED_PATTERN.exec(stored.trim());
  const [log2N, r, p] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
  const expected = Buffer.from(m?.[5] ?? '', 'base64');
  if (!m || log2N < 1 || log2N > MAX_LOG2_N || r < 1 || r > MAX_R || p < 1 || p > MAX_P || expected.length < HASH_BYTES) {
    throw new StoredHashError('the stored hash is not in the form $scrypt$ln=N,r=R,p=P$salt$hash');
  }
  const actual = await scrypt(secret, Buffer.from(m[4]!, 'base64'), expected.length, { N: 2 ** log2N, r, p });
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
