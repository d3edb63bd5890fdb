/** Slow salted hashes (scrypt) of secrets people type: the claim code, the admin's password. */
export { hashSecret, StoredHashError, verifySecret } from './secret-hash.ts';
