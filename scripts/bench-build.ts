#!/usr/bin/env -S npx tsx
/**
 * Benchmark of the image pipeline.
 *
 *   scripts/bench-build.ts [--cache-dir DIR]
 *
 * Measures on this machine, in one invocation:
 *   1. a cold build (--refresh-rootfs; downloaded .debs are reused), against the
 *      reference `mmdebstrap` of the same package set run alone;
 *   2. a rebuild after an agent-only change (another --version changes only the bundle)
 *      and after an overlay-only change (--overlay), against the reference minimum work
 *      for the same image: `mke2fs -d` of the cached tree + `zstd -3` of an image that size;
 *   3. mapped bytes (bmap) against the image size, and the .zst size.
 * Booting is measured by scripts/bench-firstboot.ts.
 * Machines here are noisy: compare the ratios, not the seconds.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProfile } from '../hardware/index.ts';
import type { ImageManifest } from '../image/release/image-manifest.ts';
import { debCacheDir, keyDigest, mmdebstrapArgs, rootfsKey } from '../image/pipeline/rootfs.ts';
import { printBenchTable, type BenchRow } from './bench-table.ts';

interface Timed {
  seconds: number;
  out: string;
  err: string;
}
interface BuildResultLine {
  image: string;
  manifest: string;
  stageSeconds: Record<string, number>;
}

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const cacheDir = args.includes('--cache-dir') ? args[args.indexOf('--cache-dir') + 1]! : '/var/tmp/memu-bench-cache';

function run(cmd: string, argv: string[], env: Record<string, string> = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, argv, { cwd: repo, env: { ...process.env, MEMU_CACHE_DIR: cacheDir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) reject(new Error(`${cmd} ${argv.join(' ')} failed (${code}):\n${err.slice(-3000)}`));
      else resolve({ seconds, out, err });
    });
  });
}
const memu = (argv: string[]) => run(process.execPath, ['bin/memu.mjs', '--json', ...argv]);
const lastJson = <T>(text: string): T => JSON.parse(text.trim().split('\n').at(-1)!) as T;
const readManifest = async (path: string) => JSON.parse(await readFile(path, 'utf8')) as ImageManifest;
const fmt = (s: number) => `${s.toFixed(1)} s`;
const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;

const work = await mkdtemp('/var/tmp/memu-bench-build-');
const rows: BenchRow[] = [];
try {
  await mkdir(cacheDir, { recursive: true });
  const profile = loadProfile('qemu-amd64');

  // 1. Cold build and its reference.
  const cold = await memu(['build', 'qemu-amd64', '--out', join(work, 'cold'), '--refresh-rootfs']);
  const coldManifest = await readManifest(lastJson<BuildResultLine>(cold.out).manifest);
  const key = await rootfsKey(profile, coldManifest.sourceDateEpoch);
  const mmdeb = await run('mmdebstrap', mmdebstrapArgs(key, join(work, 'ref-tree'), debCacheDir(cacheDir, profile)), { SOURCE_DATE_EPOCH: String(key.sourceDateEpoch) });
  rows.push(['cold build', fmt(cold.seconds), `mmdebstrap alone ${fmt(mmdeb.seconds)}`, (cold.seconds / mmdeb.seconds).toFixed(2)]);

  // 2. Rebuilds and their reference (the least work that yields the same compressed image).
  const agentOnly = await memu(['build', 'qemu-amd64', '--out', join(work, 'agent'), '--version', '0.1.0-bench.1']);
  const overlay = join(work, 'overlay');
  await mkdir(join(overlay, 'etc/memu'), { recursive: true });
  await writeFile(join(overlay, 'etc/memu/bench-note'), `${Date.now()}\n`);
  const overlayOnly = await memu(['build', 'qemu-amd64', '--out', join(work, 'overlay-out'), '--overlay', overlay]);
  const overlayResult = lastJson<BuildResultLine>(overlayOnly.out);
  const manifest = await readManifest(overlayResult.manifest);
  const root = manifest.layout.partitions.find((p) => p.role === 'root-a')!;
  const refImg = join(work, 'ref.img');
  const mk = await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', join(cacheDir, 'rootfs', keyDigest(key), 'tree'), refImg, `${root.sizeBytes / 1024}k`]);
  await run('truncate', ['-s', String(manifest.sizes.imageBytes), refImg]);
  const z = await run('zstd', ['-q', '-3', '-T2', '-f', '-o', `${refImg}.zst`, refImg]);
  const ref = mk.seconds + z.seconds;
  rows.push(['rebuild, agent-only change', fmt(agentOnly.seconds), `mke2fs -d + zstd -3 ${fmt(ref)}`, (agentOnly.seconds / ref).toFixed(2)]);
  rows.push(['rebuild, overlay-only change', fmt(overlayOnly.seconds), `mke2fs -d + zstd -3 ${fmt(ref)}`, (overlayOnly.seconds / ref).toFixed(2)]);
  const stages = overlayResult.stageSeconds;
  rows.push(['  of which artifacts stage', fmt(stages.artifacts ?? 0), `zstd -3 alone ${fmt(z.seconds)}`, ((stages.artifacts ?? 0) / z.seconds).toFixed(2)]);

  // 3. Sizes.
  const s = manifest.sizes;
  rows.push(['mapped bytes / image size', `${mb(s.mappedBytes)} / ${mb(s.imageBytes)}`, '', (s.mappedBytes / s.imageBytes).toFixed(3)]);
  rows.push(['.zst size / mapped bytes', mb(s.zstBytes), '', (s.zstBytes / s.mappedBytes).toFixed(3)]);

} finally {
  await rm(work, { recursive: true, force: true });
}

printBenchTable(rows);
