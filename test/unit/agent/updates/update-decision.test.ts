import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decideUpdate, type UpdateDecisionInput } from '../../../../agent/updates/update-decision.ts';
import { compareVersions, releaseManifestSchema, RELEASE_MANIFEST_FORMAT, type ReleaseManifest } from '../../../../shared/contracts/release-manifest.ts';
import { keyIdOf } from '../../../../shared/contracts/signature.ts';
import { signDetached, type SigningKey } from '../../../../image/release/signing-keys.ts';

function makeKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

const releaseKey = makeKey();
const otherKey = makeKey();

function manifest(overrides: Partial<ReleaseManifest> = {}): ReleaseManifest {
  return {
    format: RELEASE_MANIFEST_FORMAT,
    product: 'memu-os',
    version: '1.4.0',
    channel: 'stable',
    profile: 'qemu-amd64',
    minimumVersion: '1.2.0',
    bundle: { format: 'rauc-verity', url: '1.4.0/memu-qemu-amd64-1.4.0.raucb', sizeBytes: 123456, sha256: 'a'.repeat(64), compatible: 'memu-os-qemu-amd64' },
    stackImages: { 'registry.local/front:1': { platforms: { 'linux/amd64': `sha256:${'b'.repeat(64)}` } } },
    createdAt: '2026-12-01T00:00:00Z',
    expiresAt: '2027-01-01T00:00:00Z',
    ...overrides,
  };
}

function signed(m: ReleaseManifest | Record<string, unknown>, key = releaseKey): { manifestBytes: Buffer; signatureText: string } {
  const manifestBytes = Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
  return { manifestBytes, signatureText: signDetached(manifestBytes, key) };
}

function decide(over: Partial<UpdateDecisionInput> & { m?: ReleaseManifest } = {}) {
  const { m, ...rest } = over;
  return decideUpdate({
    ...signed(m ?? manifest()),
    trustedKeys: [releaseKey.publicKey],
    device: { profile: 'qemu-amd64', version: '1.3.0', channel: 'stable' },
    now: new Date('2026-12-05T12:00:00Z'),
    force: false,
    ...rest,
  });
}

describe('decideUpdate', () => {
  it('installs a signed, current release for this profile that is newer than the running version', () => {
    const d = decide();
    expect(d).toMatchObject({ action: 'install', keyId: releaseKey.keyId, forced: false });
    expect(d.action === 'install' && d.manifest.version).toBe('1.4.0');
  });

  it('accepts any of several trusted keys (a key rotation)', () => {
    const d = decide({ ...signed(manifest(), otherKey), trustedKeys: [releaseKey.publicKey, otherKey.publicKey] });
    expect(d).toMatchObject({ action: 'install', keyId: otherKey.keyId });
  });

  it('refuses a manifest signed by a key the device does not trust, naming both keys', () => {
    const d = decide(signed(manifest(), otherKey));
    expect(d).toMatchObject({ action: 'refuse', reason: 'untrusted-key' });
    expect(d.action === 'refuse' && d.message).toContain(otherKey.keyId);
    expect(d.action === 'refuse' && d.message).toContain(releaseKey.keyId);
  });

  it('refuses a manifest changed after signing (one version digit), before reading it', () => {
    const good = signed(manifest());
    const tampered = Buffer.from(good.manifestBytes.toString().replace('"version": "1.4.0"', '"version": "1.5.0"'));
    expect(tampered.equals(good.manifestBytes)).toBe(false);
    expect(decide({ manifestBytes: tampered, signatureText: good.signatureText })).toMatchObject({ action: 'refuse', reason: 'tampered' });
  });

  it('refuses a missing or garbled signature file as unsigned', () => {
    expect(decide({ signatureText: '' })).toMatchObject({ action: 'refuse', reason: 'unsigned' });
    expect(decide({ signatureText: '{"format":"something-else"}' })).toMatchObject({ action: 'refuse', reason: 'unsigned' });
  });

  it('refuses a signed document that is not a valid release manifest, saying which field', () => {
    const bad = { ...manifest(), bundle: { ...manifest().bundle, url: 'file:///etc/shadow' } };
    const d = decide(signed(bad));
    expect(d).toMatchObject({ action: 'refuse', reason: 'invalid' });
    expect(d.action === 'refuse' && d.message).toContain('bundle.url');
  });

  it('refuses an expired manifest, at and after its expiry instant', () => {
    expect(decide({ now: new Date('2027-01-01T00:00:00Z') })).toMatchObject({ action: 'refuse', reason: 'expired' });
    expect(decide({ now: new Date('2027-03-01T00:00:00Z'), force: true })).toMatchObject({ action: 'refuse', reason: 'expired' });
    expect(decide({ now: new Date('2026-12-31T23:59:59Z') })).toMatchObject({ action: 'install' });
  });

  it('refuses a release for another profile, even when forced', () => {
    const d = decide({ m: manifest({ profile: 'pi5' }), force: true });
    expect(d).toMatchObject({ action: 'refuse', reason: 'wrong-profile' });
    expect(d.action === 'refuse' && d.message).toBe('release 1.4.0 is for pi5 devices; this is a qemu-amd64');
  });

  it('refuses a downgrade unless forced', () => {
    const older = manifest({ version: '1.2.5' });
    expect(decide({ m: older })).toMatchObject({ action: 'refuse', reason: 'downgrade' });
    expect(decide({ m: older, force: true })).toMatchObject({ action: 'install', forced: true });
  });

  it('orders pre-releases before their release: 1.4.0-rc.2 over 1.4.0 is a downgrade', () => {
    const d = decide({ m: manifest({ version: '1.4.0-rc.2', minimumVersion: '1.0.0' }), device: { profile: 'qemu-amd64', version: '1.4.0', channel: 'stable' } });
    expect(d).toMatchObject({ action: 'refuse', reason: 'downgrade' });
  });

  it('refuses a device below the release minimum, even when forced', () => {
    const d = decide({ device: { profile: 'qemu-amd64', version: '1.1.9', channel: 'stable' }, force: true });
    expect(d).toMatchObject({ action: 'refuse', reason: 'below-minimum' });
    expect(d.action === 'refuse' && d.message).toContain('1.2.0');
  });

  it('refuses the version already running, even when forced', () => {
    expect(decide({ device: { profile: 'qemu-amd64', version: '1.4.0', channel: 'stable' }, force: true })).toMatchObject({ action: 'refuse', reason: 'same-version' });
  });

  it('refuses a release from another channel unless forced', () => {
    const beta = manifest({ channel: 'beta' });
    expect(decide({ m: beta })).toMatchObject({ action: 'refuse', reason: 'wrong-channel' });
    expect(decide({ m: beta, force: true })).toMatchObject({ action: 'install', forced: true });
  });
});

describe('release manifest contract', () => {
  it('takes relative bundle paths below the manifest and http(s) addresses, nothing else', () => {
    const withUrl = (url: string) => releaseManifestSchema.safeParse(manifest({ bundle: { ...manifest().bundle, url } })).success;
    expect(withUrl('1.4.0/b.raucb')).toBe(true);
    expect(withUrl('https://cdn.example.com/stable/1.4.0/b.raucb')).toBe(true);
    expect(withUrl('http://100.64.0.7:8080/stable/b.raucb')).toBe(true);
    expect(withUrl('../other/b.raucb')).toBe(false);
    expect(withUrl('/abs/b.raucb')).toBe(false);
    expect(withUrl('ftp://host/b.raucb')).toBe(false);
    expect(withUrl('https://user:pw@host/b.raucb')).toBe(false);
  });

  it('refuses an expiry before creation and a minimum newer than the version', () => {
    const r = releaseManifestSchema.safeParse(manifest({ expiresAt: '2026-11-01T00:00:00Z', minimumVersion: '2.0.0' }));
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.')).sort()).toEqual(['expiresAt', 'minimumVersion']);
  });

  it('orders versions by semver precedence', () => {
    const ascending = ['0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.10.0', '2.0.0'];
    for (let i = 0; i + 1 < ascending.length; i++) {
      expect(compareVersions(ascending[i]!, ascending[i + 1]!), `${ascending[i]} < ${ascending[i + 1]}`).toBeLessThan(0);
      expect(compareVersions(ascending[i + 1]!, ascending[i]!)).toBeGreaterThan(0);
    }
    expect(compareVersions('1.2.3+build.5', '1.2.3')).toBe(0);
    expect(() => compareVersions('1.2', '1.2.0')).toThrow(/not a semantic version/);
  });
});
