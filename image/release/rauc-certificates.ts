import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ignoreNotFound } from '../../shared/errors.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { RaucSigner } from './rauc-bundle.ts';

/**
 * A release CA and a code-signing certificate it issued, for RAUC bundles: what a
 * company makes once (keeping the CA key offline) and what tests make in a temporary
 * directory. P-256 keys: RAUC signs CMS with them and they are made in milliseconds.
 *
 *   ca.cert.pem       the keyring: goes into every image as /etc/rauc/keyring.pem
 *   ca.key.pem        the CA's key: issues new signing certificates, never on a build machine
 *   signing.cert.pem  `memu release --rauc-cert`
 *   signing.key.pem   `memu release --rauc-key`
 *
 * The signing certificate's extendedKeyUsage names codeSigning, which the device's
 * system.conf requires (`check-purpose=codesign`), and emailProtection, which OpenSSL's
 * CMS check applies where no purpose is configured (`rauc bundle` and `rauc info` on a
 * build machine: RAUC 1.8 refuses a codeSigning-only certificate there as "unsuitable
 * certificate purpose").
 */
export interface RaucPki {
  keyring: string;
  caKey: string;
  signer: RaucSigner;
}

export async function generateRaucPki(dir: string, opts: { organization?: string; days?: number } = {}): Promise<RaucPki> {
  const org = opts.organization ?? 'Memu';
  const days = String(opts.days ?? 3650);
  const files = { keyring: join(dir, 'ca.cert.pem'), caKey: join(dir, 'ca.key.pem'), cert: join(dir, 'signing.cert.pem'), key: join(dir, 'signing.key.pem') };
  for (const path of Object.values(files)) {
    if (await stat(path).then(() => true, ignoreNotFound)) throw new MemuError(`${path} already exists; refusing to overwrite a key`, ExitCode.badInput, 'choose another directory');
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await runCommand('openssl', [
    'req', '-x509', ...ec, '-keyout', files.caKey, '-out', files.keyring, '-days', days,
    '-subj', `/O=${org}/CN=${org} release CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const csr = join(dir, 'signing.csr.pem');
  const extensions = join(dir, 'signing.ext');
  await writeFile(extensions, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,codeSigning,emailProtection\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
  try {
    await runCommand('openssl', ['req', '-new', ...ec, '-keyout', files.key, '-out', csr, '-subj', `/O=${org}/CN=${org} release signing`]);
    await runCommand('openssl', ['x509', '-req', '-in', csr, '-CA', files.keyring, '-CAkey', files.caKey, '-set_serial', '1', '-days', days, '-extfile', extensions, '-out', files.cert]);
  } finally {
    await rm(csr, { force: true });
    await rm(extensions, { force: true });
  }
  return { keyring: files.keyring, caKey: files.caKey, signer: { certPath: files.cert, keyPath: files.key } };
}
