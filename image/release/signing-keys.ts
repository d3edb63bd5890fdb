import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { detachedSignatureText, keyIdOf } from '../../shared/contracts/signature.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { ignoreNotFound } from '../../shared/errors.ts';

export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
}

/**
 * Makes an ed25519 key pair: `<base>.key` (PKCS#8 PEM, mode 0600) and `<base>.pub` (SPKI PEM),
 * making the directory if needed. Never overwrites a key: if either file exists, neither is written.
 */
export async function generateSigningKey(base: string): Promise<{ keyPath: string; pubPath: string; keyId: string }> {
  const keyPath = `${base}.key`;
  const pubPath = `${base}.pub`;
  const taken = (await Promise.all([keyPath, pubPath].map((p) => stat(p).then(() => p, ignoreNotFound)))).filter((p) => p !== undefined);
  if (taken.length > 0) {
    throw new MemuError(`${taken.join(' and ')} already exist${taken.length === 1 ? 's' : ''}; refusing to overwrite a key`, ExitCode.badInput, 'choose another --out, or delete the old key if you really mean to replace it');
  }
  await mkdir(dirname(base), { recursive: true, mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    throw new MemuError(`cannot make the directory for ${base}: ${err.code ?? err.message}`, ExitCode.badInput, 'choose an --out in a directory you can write');
  });
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  for (const [path, pem, mode] of [
    [keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }), 0o600],
    [pubPath, publicKey.export({ type: 'spki', format: 'pem' }), 0o644],
  ] as const) {
    if (!(await writeFileAtomic(path, pem, { mode, noReplace: true }))) throw new MemuError(`${path} appeared while the key was being made; refusing to overwrite it`, ExitCode.badInput);
  }
  return { keyPath, pubPath, keyId: keyIdOf(publicKey) };
}

export async function loadSigningKey(path: string): Promise<SigningKey> {
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new MemuError(
      `cannot read signing key ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      ExitCode.badInput,
      'make one with `memu keygen --out KEYBASE`, or pass --key PATH to an existing .key file',
    );
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch {
    throw new MemuError(`${path} is not a PEM private key`, ExitCode.badInput, 'make one with `memu keygen --out KEYBASE`');
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new MemuError(`${path} is a ${privateKey.asymmetricKeyType} key; Memu signs with ed25519`, ExitCode.badInput, 'make one with `memu keygen`');
  }
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** The text of a detached `.sig` file for `data`. */
export function signDetached(data: Buffer, key: SigningKey): string {
  return detachedSignatureText(data, key.privateKey);
}
