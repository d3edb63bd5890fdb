import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../hardware/index.ts';
import { computeLayout } from '../../../../image/disk/layout.ts';
import { MemuError } from '../../../../image/host/errors.ts';
import { createHostLogger } from '../../../../image/host/log.ts';
import { developmentRaucPkiDir, resolveRaucKeyring, writeRaucConfig } from '../../../../image/pipeline/rauc-config.ts';
import { generateRaucPki, readRaucKeyring } from '../../../../image/release/rauc-certificates.ts';
import { raucSystemConf } from '../../../../image/release/rauc-system-conf.ts';

/** With openssl (what generateRaucPki runs; milliseconds for P-256 keys). */
describe('RAUC files in the image', () => {
  let dir: string;
  let pki: Awaited<ReturnType<typeof generateRaucPki>>;
  const log = createHostLogger({ level: 'silent' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-rauc-config-'));
    pki = await generateRaucPki(join(dir, 'release-pki'), { organization: 'Example Co' });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes system.conf from the layout and the keyring into the staging tree, and says which paths it wrote', async () => {
    const tree = join(dir, 'tree');
    const layout = computeLayout(loadProfile('pi5'), 'rauc-config-test');
    const keyring = await readFile(pki.keyring, 'utf8');
    expect(await writeRaucConfig(tree, { layout, keyringPem: keyring })).toEqual(['etc/rauc/system.conf', 'etc/rauc/keyring.pem']);
    expect(await readFile(join(tree, 'etc/rauc/system.conf'), 'utf8')).toBe(raucSystemConf(layout));
    expect(await readFile(join(tree, 'etc/rauc/keyring.pem'), 'utf8')).toBe(keyring);
    expect((await stat(join(tree, 'etc/rauc/keyring.pem'))).mode & 0o777).toBe(0o644);
  });

  it('system.conf does not depend on the data partition size, which the overlays stage does not know yet', () => {
    const profile = loadProfile('qemu-amd64');
    expect(raucSystemConf(computeLayout(profile, 's', { data: 9000 }))).toBe(raucSystemConf(computeLayout(profile, 's')));
  });

  it('--rauc-keyring: the release CA, named by subject and SHA-256 fingerprint', async () => {
    const keyring = await resolveRaucKeyring({ keyringPath: pki.keyring, cacheDir: join(dir, 'cache-unused'), log });
    expect(keyring.source).toBe('release');
    expect(keyring.pem).toBe(await readFile(pki.keyring, 'utf8'));
    expect(keyring.identity.certificates).toEqual([
      { subject: 'O=Example Co, CN=Example Co release CA', sha256Fingerprint: new X509Certificate(keyring.pem).fingerprint256, notAfter: expect.stringMatching(/^20\d\d-/) },
    ]);
    await expect(stat(join(dir, 'cache-unused'))).rejects.toThrow();
  });

  it('without --rauc-keyring: a development CA made once under the cache and reused, with its signer beside it', async () => {
    const cacheDir = join(dir, 'cache');
    const first = await resolveRaucKeyring({ cacheDir, log });
    const second = await resolveRaucKeyring({ cacheDir, log });
    expect(first.source).toBe('development');
    expect(second.pem).toBe(first.pem);
    expect(first.identity.certificates[0]!.subject).toBe('O=Memu development, CN=Memu development release CA');
    expect((await readdir(developmentRaucPkiDir(cacheDir))).sort()).toEqual(['ca.cert.pem', 'ca.key.pem', 'signing.cert.pem', 'signing.key.pem']);
    expect((await readdir(join(cacheDir, 'keys'))).filter((n) => n.includes('.tmp-'))).toEqual([]);
    const signer = new X509Certificate(await readFile(join(developmentRaucPkiDir(cacheDir), 'signing.cert.pem')));
    expect(signer.checkIssued(new X509Certificate(first.pem))).toBe(true);
  });

  it('two builds starting at once end up trusting the same development CA', async () => {
    const cacheDir = join(dir, 'race');
    const [a, b] = await Promise.all([resolveRaucKeyring({ cacheDir, log }), resolveRaucKeyring({ cacheDir, log })]);
    expect(a.pem).toBe(b.pem);
    expect((await readdir(join(cacheDir, 'keys'))).sort()).toEqual(['dev-rauc']);
  });

  it('refuses a keyring that is missing, not PEM, holds a private key, or is not a CA, saying what to pass instead', async () => {
    const refusal = async (content: string | undefined) => {
      const path = join(dir, `bad-${Math.random().toString(16).slice(2)}.pem`);
      if (content !== undefined) await writeFile(path, content);
      const err = await readRaucKeyring(path).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(MemuError);
      return (err as MemuError).message;
    };
    expect(await refusal(undefined)).toMatch(/cannot read the RAUC keyring .*: ENOENT/);
    expect(await refusal('hello\n')).toMatch(/holds no PEM certificate/);
    expect(await refusal(`${await readFile(pki.keyring, 'utf8')}${await readFile(pki.caKey, 'utf8')}`)).toMatch(/contains a private key; an image must carry only the CA's certificate/);
    expect(await refusal(await readFile(pki.signer.certPath, 'utf8'))).toMatch(/holds "O=Example Co, CN=Example Co release signing", which is not a CA certificate/);
    expect(await refusal('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toMatch(/holds a certificate that does not parse/);
    const expired = await readRaucKeyring(pki.keyring, new Date('2999-01-01')).then(() => undefined, (e: Error) => e.message);
    expect(expired).toMatch(/which expired on .*devices would refuse every bundle/);
  });
});
