import { apiKeyDigest } from '../../../shared/contracts/agent-api.ts';
import { unlink } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Preseed } from '../../../shared/contracts/preseed.ts';
import { ignoreNotFound } from '../../../shared/errors.ts';
import { createFileOnce, fsyncDirectory, readTextIfPresent, removeStaleTemporaryFiles } from '../../../shared/files/durable-files.ts';
import { fault, firstBootPaths, type FirstBootContext } from './first-boot-context.ts';

/**
 * The preseed secrets kept outside the settings record, in `<dataDir>/secrets/` (0600):
 *
 *   tailscale-auth-key     the auth key as given: tailscaled needs it as it is, and only
 *                          until a join succeeds, then it is deleted
 *   agent-api-key.sha256   SHA-256 (hex) of agentApiKey: the API compares a presented
 *                          key's digest with it; a key of 32+ random characters needs no
 *                          slow hash
 *
 * Written by read-preseed before its record, create-once like the device's own secrets:
 * a crash in between only repeats the write, which keeps what is there.
 */
export async function storePreseedSecrets(ctx: FirstBootContext, preseed: Preseed): Promise<void> {
  const paths = firstBootPaths(ctx.dataDir);
  await removeStaleTemporaryFiles(paths.secretsDir);
  const wanted: [string, string | undefined][] = [
    [paths.tailscaleAuthKey, preseed.tailscaleAuthKey && `${preseed.tailscaleAuthKey}\n`],
    [paths.agentApiKeyDigest, preseed.agentApiKey && `${apiKeyDigest(preseed.agentApiKey)}\n`],
  ];
  for (const [path, content] of wanted) {
    if (content === undefined) continue;
    await createFileOnce(path, content, { mode: 0o600, checkpoint: (point) => fault(ctx, `read-preseed:${basename(path)}:${point}`) });
  }
}

/** The preseeded Tailscale auth key, until tailscale-join has used it. */
export async function readTailscaleAuthKey(dataDir: string): Promise<string | undefined> {
  return (await readTextIfPresent(firstBootPaths(dataDir).tailscaleAuthKey))?.trim() || undefined;
}

/** Deletes the used Tailscale auth key, durably. */
export async function removeTailscaleAuthKey(dataDir: string): Promise<void> {
  const path = firstBootPaths(dataDir).tailscaleAuthKey;
  const removed = await unlink(path).then(() => true, ignoreNotFound);
  if (removed) await fsyncDirectory(dirname(path));
}

/**
 * SHA-256 (64 lowercase hex digits) of the preseeded agentApiKey, which machine clients
 * present as `Authorization: Bearer <key>`; undefined when none was preseeded. Throws,
 * naming the file, when the stored digest is damaged.
 */
export async function agentApiKeyDigest(dataDir: string): Promise<string | undefined> {
  const path = firstBootPaths(dataDir).agentApiKeyDigest;
  const text = await readTextIfPresent(path);
  if (text === undefined) return undefined;
  const digest = text.trim();
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`${path} does not hold a SHA-256 digest (64 lowercase hex digits)`);
  return digest;
}
