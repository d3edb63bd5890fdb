#!/usr/bin/env -S npx tsx
/**
 * Benchmark of image preloading: what preloading costs the build against what it saves
 * the device at first boot, for the same images.
 *
 *   scripts/bench-preload.ts [--payload DIR | --no-payload] [--platform linux/amd64] [--runs 3]
 *
 * Pushes the test images (busybox-based, plus one with a payload layer made from DIR,
 * default /usr/lib/x86_64-linux-gnu, to get realistic sizes) to a local registry, then
 * measures on this machine:
 *   1. build side: preloadImages into a data-root with an empty blob cache (download +
 *      load + verify), and with a warm cache (what every rebuild pays);
 *   2. device side, the reference: `docker load -i` of the equivalent archive into a
 *      fresh dockerd, plus the sync that makes it durable, i.e. what a device would spend
 *      at first boot with archives instead;
 *   3. device side with the preloaded data-root: daemon start + image lookup.
 * The headline row sets the build-time cost beside the first-boot saving. The 5 GiB row
 * is a linear extrapolation of the measured rate, labelled as such.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Platform } from '../shared/contracts/image-lock.ts';
import { createHostLogger } from '../image/host/log.ts';
import { formatBytes } from '../image/host/progress.ts';
import { exportImageArchives, preloadImages, type PreloadImage, type PreloadResult } from '../image/preload/preload.ts';
import { startThrowawayDockerd } from '../image/preload/throwaway-dockerd.ts';
import { resolveStackLock } from '../image/stack/lock.ts';
import { pushTestImage, startTestRegistry, type TestPlatform } from '../test/helpers/oci-registry.ts';

const run = promisify(execFile);
const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1]! : fallback;
};
const payloadDir = args.includes('--no-payload') ? undefined : opt('--payload', '/usr/lib/x86_64-linux-gnu');
const platform = opt('--platform', 'linux/amd64') as Platform & TestPlatform;
const runs = Number(opt('--runs', '3'));
const log = createHostLogger({ json: true, level: 'warn' });
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

interface Timed<T> {
  ms: number;
  value: T;
}
async function time<T>(fn: () => Promise<T>): Promise<Timed<T>> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}
/** Each measurement runs `runs` times on fresh directories; the median is reported (a shared 2-core machine is noisy). */
const median = <T>(xs: Timed<T>[]): Timed<T> => [...xs].sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)]!;

const work = await mkdtemp(join(tmpdir(), 'memu-bench-preload-'));
const registry = await startTestRegistry();
try {
  const mirrors = { 'docker.io': registry.host };
  const services = [
    { service: 'hello', reference: 'memutest/hello:1.0' },
    { service: 'web', reference: 'memutest/web:2' },
  ];
  console.log(`pushing test images to ${registry.url}${payloadDir ? ` (payload layer from ${payloadDir})` : ''} …`);
  const push = await time(async () => {
    await pushTestImage(registry, { repo: 'memutest/hello', tag: '1.0', platforms: ['linux/amd64', 'linux/arm64'] });
    await pushTestImage(registry, { repo: 'memutest/web', tag: '2', platforms: [platform], extraLayerDir: payloadDir });
  });
  console.log(`  pushed in ${seconds(push.ms)}`);
  const lock = await resolveStackLock({ images: services, platforms: [platform], registryMirrors: mirrors, cacheDir: join(work, 'lock-cache'), log });
  const images: PreloadImage[] = services.map((s) => ({ ...s, digest: lock.images[s.reference]!.platforms[platform]!, indexDigest: lock.images[s.reference]!.index }));

  const uncachedRuns: Timed<PreloadResult>[] = [];
  const cachedRuns: Timed<PreloadResult>[] = [];
  const loadRuns: Timed<unknown>[] = [];
  const loadSyncRuns: Timed<unknown>[] = [];
  let archive: Awaited<ReturnType<typeof exportImageArchives>> | undefined;
  for (let i = 0; i < runs; i++) {
    const cacheDir = join(work, `cache-${i}`);
    uncachedRuns.push(await time(() => preloadImages({ images, platform, dataRoot: join(work, `root-uncached-${i}`), cacheDir, registryMirrors: mirrors, log })));
    cachedRuns.push(await time(() => preloadImages({ images, platform, dataRoot: join(work, `root-cached-${i}`), cacheDir, registryMirrors: mirrors, log })));
    archive ??= await exportImageArchives({ images, platform, cacheDir, registryMirrors: mirrors, log, outFile: join(work, 'images.tar') });
    // The reference: the device loading archives at first boot (daemon already running).
    const loader = await startThrowawayDockerd({ dataRoot: join(work, `root-load-${i}`), log });
    try {
      const load = await time(() => run('docker', ['-H', loader.host, 'load', '-q', '-i', archive!.path]));
      loadRuns.push(load);
      loadSyncRuns.push({ ms: load.ms + (await time(() => run('sync'))).ms, value: undefined });
    } finally {
      await loader.stop();
    }
    await rm(join(work, `root-uncached-${i}`), { recursive: true, force: true });
    if (i > 0) await rm(join(work, `root-cached-${i}`), { recursive: true, force: true });
    await rm(join(work, `root-load-${i}`), { recursive: true, force: true });
  }
  const uncached = median(uncachedRuns);
  const cached = median(cachedRuns);
  const load = median(loadRuns);
  const loadSync = median(loadSyncRuns).ms;
  const r = cached.value;
  // First boot with the preloaded data-root: the daemon starts and finds the images.
  const boot = await time(async () => {
    const d = await startThrowawayDockerd({ dataRoot: join(work, 'root-cached-0'), log });
    try {
      for (const i of images) await d.docker.getImage(`${i.reference.split(':')[0]}@${i.digest}`).inspect();
    } finally {
      await d.stop();
    }
  });
  const emptyBoot = await time(async () => {
    const d = await startThrowawayDockerd({ dataRoot: join(work, 'root-empty'), log });
    await d.stop();
  });

  const measured = r.uncompressedLayerBytes;
  const target = 5 * 1024 ** 3;
  const scale = (ms: number) => seconds((ms * target) / measured);
  // Saved at first boot: loading the archives (and syncing them), less what finding the preloaded images costs beyond a bare daemon start.
  const firstBootSaving = loadSync - Math.max(0, boot.ms - emptyBoot.ms);
  const rows: [string, string][] = [
    ['images', `${images.length} (${platform})`],
    ['compressed layers', formatBytes(r.compressedLayerBytes)],
    ['unpacked layers (measured)', formatBytes(measured)],
    ['data-root on disk', formatBytes(r.dataRootBytes)],
    ['partition estimate (×1.4)', formatBytes(r.estimatedPartitionBytes)],
    ['archive size', formatBytes(archive!.bytes)],
    ['runs (median shown)', String(runs)],
    ['', ''],
    [
      'PRELOADING: build cost vs first-boot saving',
      `+${seconds(cached.ms)} per build (warm blob cache; ${seconds(uncached.ms)} with an empty one)  vs  −${seconds(firstBootSaving)} at every first boot  (ratio ${(cached.ms / firstBootSaving).toFixed(2)})`,
    ],
    ['', ''],
    ['build: preload, empty cache', `${seconds(uncached.ms)}  (fetch ${seconds(uncached.value.timings.fetchMs)}, load ${seconds(uncached.value.timings.loadMs)}, verify ${seconds(uncached.value.timings.verifyMs)}; downloaded ${formatBytes(uncached.value.downloadedBytes)})`],
    ['build: preload, warm cache', `${seconds(cached.ms)}  (fetch ${seconds(r.timings.fetchMs)}, load ${seconds(r.timings.loadMs)}, verify ${seconds(r.timings.verifyMs)}; downloaded ${formatBytes(r.downloadedBytes)})`],
    ['device: docker load -i (reference)', `${seconds(load.ms)}  (+ sync: ${seconds(loadSync)})`],
    ['device: preloaded data-root', `${seconds(boot.ms)} daemon start + lookup + stop (empty data-root: ${seconds(emptyBoot.ms)}); no image load`],
    ['  ratio preload load phase / docker load', (r.timings.loadMs / load.ms).toFixed(2)],
    ['', ''],
    [
      '5 GiB stack: EXTRAPOLATED, not measured',
      `linear from ${formatBytes(measured)}: build +${scale(cached.ms)} (warm cache), first boot −${scale(firstBootSaving)} on this host; slower on a Pi 5` +
        (measured < 100 * 1024 ** 2 ? ' — unreliable: these images are too small, fixed costs dominate (drop --no-payload)' : ''),
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log('\nresults');
  for (const [k, v] of rows) console.log(k ? `  ${k.padEnd(w)}  ${v}` : '');
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
