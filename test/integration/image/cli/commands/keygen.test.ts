import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../../../../image/host/errors.ts';
import { readRaucKeyring } from '../../../../../image/release/rauc-certificates.ts';
import { commandResult, runMemu } from '../../../../helpers/memu-build.ts';

describe('memu keygen --rauc', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-keygen-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('makes the RAUC CA and a code-signing certificate it issued, beside the ed25519 key, and never overwrites them', async () => {
    const pki = join(dir, 'rauc');
    const r = await runMemu(['--json', 'keygen', '--out', join(dir, 'release'), '--rauc', pki, '--organization', 'Example Co']);
    expect(r.code, r.stderr).toBe(ExitCode.ok);
    expect(commandResult(r)).toMatchObject({ ok: true, keyPath: join(dir, 'release.key'), raucKeyring: join(pki, 'ca.cert.pem'), raucCert: join(pki, 'signing.cert.pem'), raucKey: join(pki, 'signing.key.pem') });
    expect((await readdir(pki)).sort()).toEqual(['ca.cert.pem', 'ca.key.pem', 'signing.cert.pem', 'signing.key.pem']);
    expect((await stat(pki)).mode & 0o777).toBe(0o700);
    // What `memu build --rauc-keyring` accepts, and what `memu release --rauc-cert` signs with.
    const keyring = await readRaucKeyring(join(pki, 'ca.cert.pem'));
    expect(keyring.identity.certificates.map((c) => c.subject)).toEqual(['O=Example Co, CN=Example Co release CA']);
    const signer = new X509Certificate(await readFile(join(pki, 'signing.cert.pem')));
    expect(signer.checkIssued(new X509Certificate(keyring.pem))).toBe(true);
    expect(signer.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.3']));

    const again = await runMemu(['keygen', '--rauc', pki]);
    expect(again.code).toBe(ExitCode.badInput);
    expect(again.stderr).toContain('already exists; refusing to overwrite a key');
  });

  it('says what to pass when given nothing to make, or an organization a certificate cannot carry; --help explains the files', async () => {
    const nothing = await runMemu(['--json', 'keygen']);
    expect(commandResult(nothing)).toMatchObject({ ok: false, exitCode: ExitCode.badInput, error: expect.stringContaining('nothing to make'), hint: 'e.g. memu keygen --out keys/memu-release --rauc keys/rauc' });
    const org = await runMemu(['--json', 'keygen', '--rauc', join(dir, 'org'), '--organization', 'A/CN=evil']);
    expect(commandResult(org)).toMatchObject({ ok: false, exitCode: ExitCode.badInput, error: expect.stringContaining('organization "A/CN=evil" cannot name a certificate') });
    await expect(stat(join(dir, 'org'))).rejects.toThrow();
    const help = await runMemu(['keygen', '--help']);
    expect(help.stdout).toContain('--rauc <dir>');
    expect(help.stdout).toMatch(/ca\.key\.pem +the CA key: .*keep it offline/);
    expect(help.stdout).toContain('memu build --rauc-keyring DIR/ca.cert.pem');
  });
});
