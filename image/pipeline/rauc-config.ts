import { rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DiskLayout } from '../../shared/contracts/disk-layout.ts';
import { cachePaths } from '../host/cache-dir.ts';
import type { Logger } from '../host/log.ts';
import { generateRaucPki, readRaucKeyring, type RaucKeyringIdentity } from '../release/rauc-certificates.ts';
import { RAUC_KEYRING_PATH, RAUC_SYSTEM_CONF_PATH, raucSystemConf } from '../release/rauc-system-conf.ts';
import { replaceFile } from './staging.ts';

/** The release CA an image trusts for RAUC bundles, and where it came from. */
export interface RaucKeyring {
  pem: string;
  identity: RaucKeyringIdentity;
  /** `release`: given with --rauc-keyring; `development`: the build machine's own CA under the cache. */
  source: 'release' | 'development';
  path: string;
}

/** The file of a RAUC PKI directory (generateRaucPki) that is the keyring. */
const KEYRING_FILE = 'ca.cert.pem';

/** Where the build machine's development CA lives: beside the development signing key. */
export function developmentRaucPkiDir(cacheDir: string): string {
  return join(cachePaths(cacheDir).keys, 'dev-rauc');
}

/**
 * The keyring for `memu build`: the release CA given with --rauc-keyring, else a
 * development CA kept under the cache (made once, with a warning, as for the signing key),
 * so that images built on one machine all trust the bundles `memu release` signs there
 * with the development signer beside it (signing.cert.pem, signing.key.pem).
 */
export async function resolveRaucKeyring(opts: { keyringPath?: string; cacheDir: string; log: Logger }): Promise<RaucKeyring> {
  if (opts.keyringPath) return { ...(await readRaucKeyring(opts.keyringPath)), source: 'release', path: opts.keyringPath };
  const dir = developmentRaucPkiDir(opts.cacheDir);
  const hint = 'pass --rauc-keyring (the release CA, from `memu keygen --rauc DIR`) for release builds';
  if (!(await stat(join(dir, KEYRING_FILE)).then(() => true, () => false))) {
    // Made under a temporary name and renamed whole, so two builds starting at once end
    // up trusting the same CA: the second rename fails and that build uses the first's.
    const made = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await generateRaucPki(made, { organization: 'Memu development' });
    const won = await rename(made, dir).then(() => true, () => false);
    await rm(made, { recursive: true, force: true });
    if (won) opts.log.warn({ dir }, `made a local development RAUC CA; ${hint}`);
  }
  const path = join(dir, KEYRING_FILE);
  const keyring = await readRaucKeyring(path);
  opts.log.warn({ keyring: path, ca: keyring.identity.certificates.map((c) => c.sha256Fingerprint) }, `the image trusts the local development RAUC CA; ${hint}`);
  return { ...keyring, source: 'development', path };
}

/**
 * RAUC's files in the staging tree: `/etc/rauc/system.conf` from the disk layout (it reads
 * only the profile and the partitions' roles and labels, so the layout before the data
 * partition is sized gives the same file) and the keyring.
 */
export async function writeRaucConfig(tree: string, inputs: { layout: DiskLayout; keyringPem: string }): Promise<string[]> {
  const files = [
    { path: RAUC_SYSTEM_CONF_PATH, content: raucSystemConf(inputs.layout) },
    { path: RAUC_KEYRING_PATH, content: inputs.keyringPem },
  ];
  for (const file of files) await replaceFile(tree, file.path.slice(1), file.content);
  return files.map((f) => f.path.slice(1));
}
