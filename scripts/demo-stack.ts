#!/usr/bin/env -S npx tsx
/**
 * Prepares the demo's container stack: the small test stack (three busybox services and
 * the product's front door, Debian's nginx built from Debian packages by `memu image
 * build front`, which forwards /admin/ to the agent; test/helpers/test-stack.ts), pinned
 * by `memu stack lock` from a local registry for linux/amd64 and linux/arm64 and
 * prefetched into memu's blob cache, so that `memu build --stack DIR` then runs offline.
 * The family stack itself cannot be locked on a machine that cannot reach Docker Hub.
 * `--cache` adds a valkey cache service (`memu image build valkey`). Prints DIR.
 *
 *   scripts/demo-stack.ts [--cache] DIR
 */
import { join, resolve } from 'node:path';
import { memuCacheDir } from '../image/host/cache-dir.ts';
import { runMemu } from '../test/helpers/memu-build.ts';
import { startTestRegistry } from '../test/helpers/oci-registry.ts';
import { writeTestStack } from '../test/helpers/test-stack.ts';

const args = process.argv.slice(2);
const cache = args.includes('--cache');
const dir = resolve(args.find((a) => !a.startsWith('--')) ?? 'out/demo-stack');
const cacheDir = memuCacheDir();
const registry = await startTestRegistry();
try {
  await writeTestStack(registry, dir, { cache, cacheDir });
  const prefetch = await runMemu(['stack', 'lock', '--prefetch', '--platform', 'linux/amd64,linux/arm64', '--compose', join(dir, 'stack.yml'), '--lock', join(dir, 'images.lock.json')], {
    env: { MEMU_CACHE_DIR: cacheDir },
  });
  if (prefetch.code !== 0) throw new Error(`memu stack lock --prefetch failed (exit ${prefetch.code}):\n${prefetch.stderr.slice(-2000)}`);
  process.stdout.write(`${dir}\n`);
} finally {
  await registry.stop();
}
