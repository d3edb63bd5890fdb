import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
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
  // It goes into openssl's -subj, where / and = separate fields.
  if (!/^[A-Za-z0-9][A-Za-z0-9 .,&()_-]{0,60}$/.test(org)) throw new MemuError(`organization "${org}" cannot name a certificate: use letters, digits, spaces and . , & ( ) _ - (up to 61 characters)`, ExitCode.badInput);
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

/** Which CA an image trusts, for the build's output and log: enough to tell two CAs apart. */
export interface RaucKeyringIdentity {
  /** One entry per certificate in the keyring (more than one while a CA is being rotated). */
  certificates: { subject: string; sha256Fingerprint: string; notAfter: string }[];
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/**
 * Reads a RAUC keyring (one or more CA certificates, PEM) given as input, and refuses what
 * would leave every device unable to take an update or would leak a secret: a file that
 * is not PEM certificates, a private key inside it, a certificate that is not a CA (the
 * signing certificate given by mistake), an expired one.
 */
export async function readRaucKeyring(path: string, now = new Date()): Promise<{ pem: string; identity: RaucKeyringIdentity }> {
  const hint = 'pass the release CA certificate (ca.cert.pem from `memu keygen --rauc DIR`)';
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new MemuError(`cannot read the RAUC keyring ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, ExitCode.badInput, hint);
  }
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.some((b) => b[1]!.includes('PRIVATE KEY'))) {
    throw new MemuError(`the RAUC keyring ${path} contains a private key; an image must carry only the CA's certificate`, ExitCode.badInput, hint);
  }
  const certificates = blocks.filter((b) => b[1] === 'CERTIFICATE').map((b) => b[0]);
  if (certificates.length === 0) throw new MemuError(`the RAUC keyring ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, ExitCode.badInput, hint);
  const identity: RaucKeyringIdentity = { certificates: [] };
  for (const text of certificates) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(text);
    } catch (err) {
      throw new MemuError(`the RAUC keyring ${path} holds a certificate that does not parse: ${(err as Error).message}`, ExitCode.badInput, hint);
    }
    const subject = cert.subject.replaceAll('\n', ', ');
    if (!cert.ca) throw new MemuError(`the RAUC keyring ${path} holds "${subject}", which is not a CA certificate (basicConstraints CA:TRUE)`, ExitCode.badInput, `${hint}, not the signing certificate`);
    if (new Date(cert.validTo) <= now) throw new MemuError(`the RAUC keyring ${path} holds "${subject}", which expired on ${cert.validTo}; devices would refuse every bundle`, ExitCode.badInput, 'issue a new release CA and sign releases with a certificate it issued');
    identity.certificates.push({ subject, sha256Fingerprint: cert.fingerprint256, notAfter: new Date(cert.validTo).toISOString() });
  }
  return { pem: `${certificates.join('\n')}\n`, identity };
}
