import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPublicKey, verifyDetached } from '../../../../shared/contracts/signature.ts';
import { generateSigningKey, loadSigningKey, signDetached } from '../../../../image/release/signing-keys.ts';
import { MemuError } from '../../../../image/host/errors.ts';

describe('ed25519 detached signatures', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'memu-sig-'));
  const made = await generateSigningKey(join(dir, 'release'));
  const key = await loadSigningKey(made.keyPath);
  const trusted = loadPublicKey(await readFile(made.pubPath));
  const data = Buffer.from('{"format":"memu-image-manifest/1"}\n');

  it('keeps the private key private (0600) and refuses to overwrite a key', async () => {
    expect((await stat(made.keyPath)).mode & 0o777).toBe(0o600);
    await expect(generateSigningKey(join(dir, 'release'))).rejects.toThrow(/already exist/);
  });

  it('verifies what it signed and names the key', () => {
    expect(verifyDetached(data, signDetached(data, key), trusted)).toEqual({ ok: true, keyId: made.keyId });
  });

  it('rejects a changed byte, another key, and garbage, each with a reason', async () => {
    const sig = signDetached(data, key);
    const changed = Buffer.from(data);
    changed[3] = changed[3]! ^ 1;
    expect(verifyDetached(changed, sig, trusted)).toEqual({ ok: false, reason: 'signature does not match the signed file' });
    const other = await generateSigningKey(join(dir, 'other'));
    const otherKey = loadPublicKey(await readFile(other.pubPath));
    const result = verifyDetached(data, sig, otherKey);
    expect(result.ok).toBe(false);
    expect(!result.ok && result.reason).toMatch(/signed by key [0-9a-f]{16}, but the trusted key is [0-9a-f]{16}/);
    expect(verifyDetached(data, 'not json', trusted)).toEqual({ ok: false, reason: 'not a memu-signature/1 signature file' });
  });

  it('explains an unreadable or wrong signing key', async () => {
    await expect(loadSigningKey(join(dir, 'missing.key'))).rejects.toThrow(MemuError);
    await expect(loadSigningKey(join(dir, 'missing.key'))).rejects.toThrow(/cannot read signing key .*missing\.key: ENOENT/);
    await expect(loadSigningKey(made.pubPath)).rejects.toThrow(/is not a PEM private key/);
  });
});
