#!/usr/bin/env -S npx tsx
/**
 * Flash benchmark: one image written to the same regular-file target, and to a
 * loop device when the kernel offers one, by `memu flash`, `bmaptool copy` and
 * `dd`, from the raw image and from `.zst`. The image is a generated sparse image
 * of realistic fill (default 1.5 GiB, 15 % mapped in scattered extents), or a
 * built one with --image (its .bmap and .img.zst beside it, as `memu build`
 * leaves them). Caches are dropped before every run. Prints the median times and
 * the ratios memu/bmaptool and memu/dd.
 *
 *   scripts/bench-flash.ts [--size 1.5G] [--mapped 0.15] [--image out/memu-qemu-amd64-0.1.0.img]
 *                       [--runs 3] [--dir /var/tmp]
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { attachLoop, compressImage, createBmap, detachLoop, kernelHasLoopDevices, makeSparseImage, memuCommandLine } from '../test/helpers/flash-fixtures.ts';
import { bmapCandidates } from '../image/flash/compression.ts';

function parseSize(s: string): number {
  const m = /^([\d.]+)\s*([KMGT]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new Error(`bad size: ${s}`);
  const mult = ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as Record<string, number>)[m[2]!.toUpperCase()]!;
  return Math.round((Number(m[1]) * mult) / 4096) * 4096;
}

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1.5G' },
    mapped: { type: 'string', default: '0.15' },
    image: { type: 'string' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: process.env.TMPDIR ?? '/var/tmp' },
    keep: { type: 'boolean', default: false },
  },
});
const sizeBytes = values.image ? statSync(values.image).size : parseSize(values.size!);
const runs = Math.max(1, Number(values.runs));

async function sh(command: string, args: string[]): Promise<string> {
  return await new Promise((res, rej) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d.toString()));
    child.stderr.on('data', (d) => (err += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${command} ${args.join(' ')} failed (${code}): ${err.slice(-500)}`))));
  });
}

let canDropCaches = true;
async function dropCaches(): Promise<void> {
  await sh('sync', []);
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
  } catch {
    canDropCaches = false;
  }
}

/**
 * Wall time of one run after dropping caches; for memu also the flash's own time from its
 * JSON result. Every tool starts from the same state: no target file (deleting a fully written one is
 * slow, so not timed), caches dropped, then the tool's own program files read back in by
 * an untimed `--help`/`--version`, so the figures compare flashing rather than how many
 * program files each tool loads from a cold disk (memu's Node start-up reads hundreds).
 */
async function timed(command: string, args: string[], target: string, warmUp: string[]): Promise<{ seconds: number; engineSeconds: number | undefined }> {
  if (!target.startsWith('/dev/')) await rm(target, { force: true });
  await dropCaches();
  await sh(warmUp[0]!, warmUp.slice(1)).catch(() => {});
  const t = performance.now();
  const out = await sh(command, args);
  const seconds = (performance.now() - t) / 1000;
  const result = out
    .split('\n')
    .filter((l) => l.includes('"type":"result"'))
    .map((l) => JSON.parse(l) as { seconds?: number })[0];
  return { seconds, engineSeconds: result?.seconds };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Case {
  tool: string;
  source: 'raw' | 'zst';
  run: (target: string) => Promise<{ seconds: number; engineSeconds: number | undefined }>;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(values.dir || tmpdir(), 'memu-bench-flash-'));
  let loop: string | undefined;
  try {
    let imagePath: string;
    let bmap: string | undefined;
    let zst: string;
    if (values.image) {
      imagePath = values.image;
      bmap = bmapCandidates(imagePath).find((p) => existsSync(p));
      if (!bmap) throw new Error(`no .bmap beside ${imagePath} (looked for ${bmapCandidates(imagePath).join(', ')})`);
      zst = existsSync(`${imagePath}.zst`) ? `${imagePath}.zst` : await compressImage(imagePath, 'zstd');
      console.log(`image: ${imagePath} (${(sizeBytes / 1024 ** 3).toFixed(2)} GiB); bmap ${bmap}; zstd ${zst}`);
    } else {
      imagePath = join(work, 'bench.img');
      console.log(`generating a ${(sizeBytes / 1024 ** 3).toFixed(2)} GiB sparse image, ${(Number(values.mapped) * 100).toFixed(0)} % mapped, in ${work}`);
      const image = await makeSparseImage(imagePath, { sizeBytes, mappedFraction: Number(values.mapped) });
      bmap = await createBmap(imagePath);
      zst = await compressImage(imagePath, 'zstd');
      console.log(`image: ${image.extents.length} extents, ${(image.mappedBytes / 1024 ** 2).toFixed(0)} MiB mapped; bmap ${bmap}; zstd ${zst}`);
    }

    const fileTarget = join(work, 'target.img');
    const targets = [{ name: 'file', path: fileTarget }];
    if (kernelHasLoopDevices()) {
      const backing = join(work, 'loop-backing.img');
      await truncate(backing, 0).catch(() => writeFileSync(backing, ''));
      await truncate(backing, sizeBytes);
      loop = await attachLoop(backing);
      targets.push({ name: 'loop', path: loop });
    } else {
      console.log('no loop devices in this kernel: regular-file target only');
    }

    const [memuCmd, ...memuArgs] = memuCommandLine as [string, ...string[]];
    const memuWarm = [memuCmd, ...memuArgs, 'flash', '--help'];
    const bmapPath = bmap!;
    const cases: Case[] = [
      { tool: 'memu', source: 'raw', run: (t) => timed(memuCmd, [...memuArgs, '--json', 'flash', '--yes', imagePath, t], t, memuWarm) },
      { tool: 'memu', source: 'zst', run: (t) => timed(memuCmd, [...memuArgs, '--json', 'flash', '--yes', zst, t], t, memuWarm) },
      { tool: 'memu --no-verify', source: 'raw', run: (t) => timed(memuCmd, [...memuArgs, '--json', 'flash', '--yes', '--no-verify', imagePath, t], t, memuWarm) },
      { tool: 'memu --no-verify', source: 'zst', run: (t) => timed(memuCmd, [...memuArgs, '--json', 'flash', '--yes', '--no-verify', zst, t], t, memuWarm) },
      { tool: 'bmaptool', source: 'raw', run: (t) => timed('bmaptool', ['-q', 'copy', '--bmap', bmapPath, imagePath, t], t, ['bmaptool', '--version']) },
      { tool: 'bmaptool', source: 'zst', run: (t) => timed('bmaptool', ['-q', 'copy', '--bmap', bmapPath, zst, t], t, ['bmaptool', '--version']) },
      { tool: 'dd', source: 'raw', run: (t) => timed('dd', [`if=${imagePath}`, `of=${t}`, 'bs=4M', 'conv=fsync', 'status=none'], t, ['dd', '--version']) },
      { tool: 'dd', source: 'zst', run: (t) => timed('sh', ['-c', `zstd -dc '${zst}' | dd of='${t}' bs=4M iflag=fullblock conv=fsync status=none`], t, ['sh', '-c', 'zstd --version; dd --version']) },
    ];

    // Rounds interleave the tools, so load from anything else on the machine hits all of them
    // alike, and each round starts one case later: a run right after dd (which leaves seconds
    // of writeback behind on a VM's disk) is slower, and no tool should always be that run.
    const times = new Map<string, { wall: number[]; engine: number[] }>();
    for (let round = 0; round < runs; round++) {
      for (const target of targets) {
        for (const c of [...cases.slice(round % cases.length), ...cases.slice(0, round % cases.length)]) {
          const key = `${c.tool}|${c.source}|${target.name}`;
          const r = await c.run(target.path);
          const entry = times.get(key) ?? { wall: [], engine: [] };
          times.set(key, entry);
          entry.wall.push(r.seconds);
          if (r.engineSeconds !== undefined) entry.engine.push(r.engineSeconds);
        }
      }
      console.log(`round ${round + 1}/${runs} done`);
    }
    for (const [key, t] of times) {
      const [tool = '', source = '', target = ''] = key.split('|');
      const engine = t.engine.length ? `   flash itself (from its JSON result): ${median(t.engine).toFixed(2)} s` : '';
      console.log(`${target.padEnd(5)} ${source.padEnd(4)} ${tool.padEnd(17)} ${median(t.wall).toFixed(2)} s   (runs: ${t.wall.map((x) => x.toFixed(2)).join(', ')})${engine}`);
    }
    type Pick = (xs: number[]) => number;
    const wall = (key: string, pick: Pick): number => pick(times.get(key)!.wall);
    const engine = (key: string, pick: Pick): number => pick(times.get(key)!.engine);
    const best: Pick = (xs) => Math.min(...xs);
    const f = (x: number): string => x.toFixed(2);

    console.log(`\n${runs} run(s) each, ${canDropCaches ? 'caches dropped before each run (program files re-warmed, see timed())' : 'caches NOT dropped (no permission)'}; memu verifies by reading back, bmaptool checks checksums while writing, dd checks nothing`);
    for (const [label, pick] of [
      ['median', median],
      ['best (least disturbed by other load)', best],
    ] as const) {
      console.log(`\n${label}:`);
      console.log('target source   memu   bmaptool     dd   memu/bmaptool  memu/dd  | no-verify/bmaptool  flash-only/bmaptool');
      for (const target of targets) {
        for (const source of ['raw', 'zst']) {
          const m = wall(`memu|${source}|${target.name}`, pick);
          const mn = wall(`memu --no-verify|${source}|${target.name}`, pick);
          const me = engine(`memu|${source}|${target.name}`, pick);
          const b = wall(`bmaptool|${source}|${target.name}`, pick);
          const d = wall(`dd|${source}|${target.name}`, pick);
          console.log(
            `${target.name.padEnd(6)} ${source.padEnd(6)} ${f(m).padStart(5)}s ${f(b).padStart(8)}s ${f(d).padStart(5)}s ${f(m / b).padStart(14)} ${f(m / d).padStart(8)}  | ${f(mn / b).padStart(18)} ${f(me / b).padStart(20)}`,
          );
        }
      }
    }
    console.log('memu = the `memu flash` command end to end, verification included; flash-only = its own time without process start-up.');
    const startup = async (command: string, args: string[]): Promise<string> => {
      const xs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await sh(command, args);
        xs.push((performance.now() - t) / 1000);
      }
      return median(xs).toFixed(2);
    };
    console.log(`process start-up alone (warm): memu --help ${await startup(memuCmd, [...memuArgs, '--help'])} s, bmaptool --version ${await startup('bmaptool', ['--version'])} s`);
  } finally {
    if (loop) await detachLoop(loop);
    if (!values.keep) await rm(work, { recursive: true, force: true });
    else console.log(`kept ${work}`);
  }
}

await main();
