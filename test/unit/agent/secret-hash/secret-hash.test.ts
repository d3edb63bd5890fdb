import { describe, expect, it } from 'vitest';
import { hashSecret, StoredHashError, verifySecret } from '../../../../agent/secret-hash/index.ts';

describe('scrypt hashes of secrets people type', () => {
  it('is salted, states its parameters, and verifies only the secret behind it', async () => {
    const a = await hashSecret('purple kettles hum at dawn');
    const b = await hashSecret('purple kettles hum at dawn');
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('purple');
    expect(await verifySecret('purple kettles hum at dawn', a)).toBe(true);
    expect(await verifySecret('purple kettles hum at dusk', a)).toBe(false);
  });

  it('reads the parameters from the stored string, so stronger ones can come later', async () => {
    const stored = (await hashSecret('x')).replace('ln=15', 'ln=14');
    // Same salt and hash under other parameters: a different answer, not an error.
    expect(await verifySecret('x', stored)).toBe(false);
  });

  it('calls a damaged or foreign record a fault, never a wrong secret, and refuses costs that would exhaust memory', async () => {
    await expect(verifySecret('x', 'plain text')).rejects.toThrow(StoredHashError);
    await expect(verifySecret('x', `$scrypt$ln=30,r=8,p=1$${'a'.repeat(22)}$${'b'.repeat(43)}`)).rejects.toThrow(StoredHashError);
    await expect(verifySecret('x', `$argon2id$v=19$m=65536,t=3,p=4$${'a'.repeat(22)}$${'b'.repeat(43)}`)).rejects.toThrow(StoredHashError);
  });
});
