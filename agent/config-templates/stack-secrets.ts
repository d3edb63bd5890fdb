import { generateKeyPairSync, randomBytes } from 'node:crypto';
import type { StackSecrets } from './stack-values.ts';

/**
 * Per-device secrets of the stack, generated once on the device (never shipped in an
 * image or the repository). The provisioning journal stores them; the renderer only
 * reads them.
 */
function randomSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function generateStackSecrets(): StackSecrets {
  return {
    postgresPassword: randomSecret(),
    synapseDbPassword: randomSecret(),
    immichDbPassword: randomSecret(),
    redisPassword: randomSecret(),
    synapseRegistrationSharedSecret: randomSecret(),
    synapseMacaroonSecretKey: randomSecret(),
    synapseFormSecret: randomSecret(),
  };
}

const KEY_ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * A Synapse signing key file's content: `ed25519 a_XXXX <unpadded base64 of the 32-byte
 * seed>`, the format Synapse writes with --generate-keys. The key signs everything the
 * server sends; losing it breaks federation history, so it is created once and backed up.
 */
export function generateSynapseSigningKey(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  if (!jwk.d) throw new Error('Node did not export the ed25519 private key seed');
  const seed = Buffer.from(jwk.d, 'base64url');
  const id = Array.from(randomBytes(4), (b) => KEY_ID_ALPHABET[b % KEY_ID_ALPHABET.length]).join('');
  return `ed25519 a_${id} ${seed.toString('base64').replace(/=+$/, '')}\n`;
}
