import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';

/**
 * Detached ed25519 signatures (`<file>.sig`) over manifests and release files.
 * The device is the authority on this format: the host signs with it, the agent
 * (and `memu verify`) check it. A signature file is a small JSON document so it can
 * name the key that made it and grow new algorithms without guessing.
 */
export const SIGNATURE_FORMAT = 'memu-signature/1';

export const signatureFileSchema = z
  .object({
    format: z.literal(SIGNATURE_FORMAT),
    algorithm: z.literal('ed25519'),
    keyId: z.string().regex(/^[0-9a-f]{16}$/),
    signature: z.string().min(1),
  })
  .strict();
export type SignatureFile = z.infer<typeof signatureFileSchema>;

/** A short, stable name for a public key: the first 16 hex digits of sha256(SPKI DER). */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex').slice(0, 16);
}

export function loadPublicKey(pem: string | Buffer): KeyObject {
  const key = createPublicKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`expected an ed25519 public key, got ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

export type SignatureCheck = { ok: true; keyId: string } | { ok: false; reason: string };

/** Checks `data` against the text of a `.sig` file and a trusted public key. */
export function verifyDetached(data: Buffer, signatureText: string, publicKey: KeyObject): SignatureCheck {
  let parsed: SignatureFile;
  try {
    parsed = signatureFileSchema.parse(JSON.parse(signatureText));
  } catch {
    return { ok: false, reason: `not a ${SIGNATURE_FORMAT} signature file` };
  }
  const keyId = keyIdOf(publicKey);
  if (parsed.keyId !== keyId) {
    return { ok: false, reason: `signed by key ${parsed.keyId}, but the trusted key is ${keyId}` };
  }
  const sig = Buffer.from(parsed.signature, 'base64');
  if (sig.length !== 64 || !verify(null, data, publicKey, sig)) {
    return { ok: false, reason: 'signature does not match the signed file' };
  }
  return { ok: true, keyId };
}

/** The text of a `.sig` file for `data`, made with an ed25519 private key (release keys, a unit's QA key). */
export function detachedSignatureText(data: Buffer, privateKey: KeyObject): string {
  const file: SignatureFile = {
    format: SIGNATURE_FORMAT,
    algorithm: 'ed25519',
    keyId: keyIdOf(createPublicKey(privateKey)),
    signature: sign(null, data, privateKey).toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}
