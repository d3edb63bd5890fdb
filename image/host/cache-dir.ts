import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * The one place that decides where `memu` keeps its caches, so every command that
 * fills a cache and every command that reads it agree: `--cache-dir`, else
 * `$MEMU_CACHE_DIR`, else `$XDG_CACHE_HOME/memu`, else `~/.cache/memu`.
 */
export function memuCacheDir(override?: string, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(override ?? env.MEMU_CACHE_DIR ?? join(env.XDG_CACHE_HOME || join(env.HOME ?? homedir(), '.cache'), 'memu'));
}

/** What lives in a cache directory. */
export function cachePaths(cacheDir: string) {
  return {
    /** Root filesystem trees, keyed by the manifest of their inputs. */
    rootfs: join(cacheDir, 'rootfs'),
    /** Downloaded .debs per suite and architecture, kept so a rebuild can pin to recorded versions. */
    debs: join(cacheDir, 'debs'),
    /** OCI blobs by digest: filled by `memu stack lock --prefetch`, read by `memu build --stack`. */
    blobs: join(cacheDir, 'blobs'),
    /** Native addons the agent ships (better-sqlite3), compiled per architecture and keyed by their inputs. */
    addons: join(cacheDir, 'addons'),
    /** The local development signing key. */
    keys: join(cacheDir, 'keys'),
  };
}
