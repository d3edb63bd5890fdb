import { randomBytes, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parsePreseed } from '../../../../shared/contracts/preseed.ts';
import { generateClaimCode, hashClaimCode, verifyClaimCode } from '../../../../agent/claim-code/index.ts';

const CODE = '7K3M-Q9XD-2HFT-B8RW';

describe('generated claim codes', () => {
  it('follow the preseed contract (4 groups of 4 Crockford base32 symbols) and do not repeat', () => {
    const codes = new Set(Array.from({ length: 500 }, generateClaimCode));
    expect(codes.size).toBe(500);
    for (const code of [...codes].slice(0, 50)) {
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
      expect(parsePreseed(JSON.stringify({ version: 1, claimCode: code }))).toMatchObject({ ok: true });
    }
  });
});

describe('claim code hashes', () => {
  it('are salted scrypt hashes with their parameters, holding no form of the code', async () => {
    const [a, b] = await Promise.all([hashClaimCode(CODE), hashClaimCode(CODE)]);
    expect(a).toMatch(/^\$scrypt\$ln=15,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(b).not.toBe(a); // a new salt each time
    for (const form of [CODE, CODE.replace(/-/g, ''), CODE.toLowerCase(), CODE.replace(/-/g, '').toLowerCase()]) {
      expect(a).not.toContain(form);
    }
  });

  it('accept the code however a person types it from the label, and nothing else', async () => {
    const stored = await hashClaimCode(CODE);
    for (const typed of [CODE, '7k3m q9xd 2hft b8rw', '7K3MQ9XD2HFTB8RW', ' 7k3m-q9xd-2hft-b8rw ']) {
      expect(await verifyClaimCode(typed, stored), typed).toBe(true);
    }
    for (const other of ['7K3M-Q9XD-2HFT-B8RX', 'B8RW-2HFT-Q9XD-7K3M', '7K3M-Q9XD-2HFT', '', 'not a code at all']) {
      expect(await verifyClaimCode(other, stored), other).toBe(false);
    }
  });

  it('hash the canonical code, so a label read with look-alikes (I, L, O) still matches', async () => {
    const stored = await hashClaimCode('1100-0000-0000-0000');
    expect(await verifyClaimCode('IL0O-0000-0000-0000', stored)).toBe(true);
  });

  it('are verified with the parameters stored with them', async () => {
    const salt = randomBytes(16);
    const key = scryptSync(CODE, salt, 32, { N: 2 ** 10, r: 4, p: 2 });
    const stored = `$scrypt$ln=10,r=4,p=2$${salt.toString('base64').replace(/=+$/, '')}$${key.toString('base64').replace(/=+$/, '')}`;
    expect(await verifyClaimCode(CODE, stored)).toBe(true);
    expect(await verifyClaimCode(CODE, stored.replace('ln=10', 'ln=11'))).toBe(false);
  });

  it('refuse to hash what is not a claim code, without quoting it', async () => {
    await expect(hashClaimCode('hunter2-secret')).rejects.toThrow(/^not a claim code/);
    await expect(hashClaimCode('hunter2-secret')).rejects.not.toThrow(/hunter2/);
  });

  it('report a damaged or foreign stored hash as an error, not as a wrong code', async () => {
    const stored = await hashClaimCode(CODE);
    const damaged = [
      '',
      CODE,
      stored.replace('$scrypt$', '$argon2id$'),
      stored.replace('ln=15', 'ln=40'), // would ask for terabytes
      stored.replace('r=8', 'r=0'),
      stored.slice(0, -30), // hash cut short
      `${stored}$extra`,
    ];
    for (const value of damaged) await expect(verifyClaimCode(CODE, value), value).rejects.toThrow(/stored claim code hash is not in the form/);
  });
});
