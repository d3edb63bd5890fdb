import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BackgroundHasher } from '../../../../image/flash/background-hasher.ts';

const hasher = new BackgroundHasher();
afterAll(() => hasher.close());

function sharedBytes(n: number, seed: number): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(n));
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('hashing on a worker thread', () => {
  it('gives the same digests as node:crypto for interleaved hashes fed in pieces', async () => {
    const a = sharedBytes(300_000, 1);
    const b = sharedBytes(123_457, 2);
    const ha = hasher.begin('sha256');
    const hb = hasher.begin('sha1');
    await Promise.all([hasher.update(ha, a.subarray(0, 100_000)), hasher.update(hb, b.subarray(0, 7)), hasher.update(ha, a.subarray(100_000)), hasher.update(hb, b.subarray(7))]);
    expect(await hasher.digest(ha)).toBe(createHash('sha256').update(a).digest('hex'));
    expect(await hasher.digest(hb)).toBe(createHash('sha1').update(b).digest('hex'));
  });

  it('gives the digest of nothing for a hash that was never fed', async () => {
    expect(await hasher.digest(hasher.begin('sha256'))).toBe(createHash('sha256').digest('hex'));
  });

  it('refuses memory the worker cannot see, and reports an unknown algorithm', async () => {
    expect(() => hasher.update(hasher.begin('sha256'), Buffer.alloc(10))).toThrow(/SharedArrayBuffer/);
    await expect(hasher.update(hasher.begin('no-such-hash'), sharedBytes(10, 3))).rejects.toThrow(/hashing failed/);
  });

  it('fails every pending and later request once closed', async () => {
    const own = new BackgroundHasher();
    await own.close();
    await expect(own.digest(own.begin('sha256'))).rejects.toThrow(/closed/);
  });
});
