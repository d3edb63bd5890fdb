#!/usr/bin/env -S npx tsx
/**
 * The backup engine's overhead over plain restic, in the same run: a generated photo
 * tree (random bytes, as incompressible as JPEGs, 1–7 MiB a file) is backed up by
 * `restic backup` into one repository and by the engine (agent/backups: a backup set
 * with its manifest) into another; then 1 % of the files are rewritten and both back up
 * again. Page caches are dropped before each timed run (as root), so both read the tree
 * from disk. Each round uses two new repositories and takes turns at going first; the
 * table shows the medians. Also the peak memory: the agent process during the engine's
 * runs, and restic's own peak (VmHWM) in each. Goal: the engine within 1.1× of plain
 * restic.
 *
 *   scripts/bench-backup.ts [--size 1G|5G|<bytes>] [--rounds 3] [--dir DIR]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { ensureBackupPassword, initBackupRepository, type BackupRepository, type BackupRunResult } from '../agent/backups/index.ts';
import { runCommand } from '../shared/process/run-command.ts';
import { printBenchTable, ratio, type BenchRow } from './bench-table.ts';

function argument(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function parseSize(text: string): number {
  const m = /^([0-9.]+)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new Error(`--size ${text}: expected a number of bytes, or e.g. 1G, 5G, 500M`);
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(m[1]) * unit);
}

const SIZE = parseSize(argument('--size') ?? '1G');
const ROUNDS = Number(argument('--rounds') ?? 3);
const MiB = 1024 * 1024;

/** Photos of 1–7 MiB in year/month folders until `size` bytes; returns the files' paths. */
async function generatePhotoTree(root: string, size: number): Promise<string[]> {
  const files: string[] = [];
  let written = 0;
  for (let i = 0; written < size; i++) {
    const dir = join(root, String(2015 + (i % 10)), String(1 + (i % 12)).padStart(2, '0'));
    await mkdir(dir, { recursive: true });
    const bytes = Math.min(size - written, MiB + ((i * 2_654_435_761) % (6 * MiB)));
    const path = join(dir, `IMG_${String(i).padStart(5, '0')}.jpg`);
    const fd = await open(path, 'w');
    for (let done = 0; done < bytes; done += 4 * MiB) await fd.write(randomBytes(Math.min(4 * MiB, bytes - done)));
    await fd.close();
    files.push(path);
    written += bytes;
  }
  return files;
}

/** Page caches dropped so the next run reads the tree from disk (root only; otherwise both runs read from memory). */
function dropCaches(): void {
  if (process.getuid?.() !== 0) return;
  execFileSync('sync');
  execFileSync('sh', ['-c', 'echo 3 > /proc/sys/vm/drop_caches']);
}

function childPids(pid: number): number[] {
  const tasks = readdirSync(`/proc/${pid}/task`);
  return tasks.flatMap((t) => readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
}

function statusKiB(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0; // it ended between the listing and the read
  }
}

/** Samples, while `work` runs, this process's RSS and the peak RSS (VmHWM) of any restic it started. */
async function measured<T>(work: () => Promise<T>): Promise<{ value: T; seconds: number; agentBeforeMiB: number; agentPeakMiB: number; resticPeakMiB: number }> {
  const agentBefore = process.memoryUsage().rss;
  let agentPeak = 0;
  let resticPeak = 0;
  const sample = () => {
    agentPeak = Math.max(agentPeak, process.memoryUsage().rss);
    for (const pid of childPids(process.pid)) {
      if (existsSync(`/proc/${pid}/comm`) && readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'restic') resticPeak = Math.max(resticPeak, statusKiB(pid, 'VmHWM') * 1024);
    }
  };
  const timer = setInterval(sample, 50);
  const started = performance.now();
  try {
    const value = await work();
    return { value, seconds: (performance.now() - started) / 1000, agentBeforeMiB: agentBefore / MiB, agentPeakMiB: agentPeak / MiB, resticPeakMiB: resticPeak / MiB };
  } finally {
    clearInterval(timer);
    sample();
  }
}

const log = pino({ level: 'warn' });
const base = argument('--dir') ?? tmpdir();
const work = await mkdtemp(join(base, 'memu-bench-backup-'));
try {
  const dataDir = join(work, 'data');
  const passwordFile = join(work, 'secrets', 'backup-repository-password');
  await ensureBackupPassword(passwordFile);
  const env = { RESTIC_PASSWORD_FILE: passwordFile };

  process.stdout.write(`generating ${(SIZE / 1024 ** 3).toFixed(2)} GiB of photos in ${dataDir} … `);
  const t0 = performance.now();
  const photos = await generatePhotoTree(join(dataDir, 'photos'), SIZE);
  console.log(`${photos.length} files in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  interface Measured {
    seconds: number;
    agentBeforeMiB: number;
    agentPeakMiB: number;
    resticPeakMiB: number;
  }
  const results = { plainFirst: [] as Measured[], engineFirst: [] as Measured[], plainIncremental: [] as Measured[], engineIncremental: [] as Measured[] };
  let openSeconds = 0;
  let changedCount = 0;
  let summary: BackupRunResult['filesSummary'] | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    const plainRepo = join(work, `plain-repo-${round}`);
    const plainCache = join(work, `plain-cache-${round}`);
    await runCommand('restic', ['init', '--repo', plainRepo, '--cache-dir', plainCache], { env });
    const plainBackup = () => runCommand('restic', ['--repo', plainRepo, '--cache-dir', plainCache, 'backup', '--quiet', '--host', 'memu-bench', join(dataDir, 'photos')], { env });
    const opts = {
      passwordFile,
      cacheDir: join(work, `engine-cache-${round}`),
      stagingDir: join(dataDir, 'agent', 'backup-staging'),
      stateDir: join(dataDir, 'agent', 'backups'),
      log,
    };
    const opened = await measured(() => initBackupRepository({ kind: 'local', path: join(work, `engine-repo-${round}`) }, opts));
    openSeconds = opened.seconds;
    const repository: BackupRepository = opened.value.repository;
    const engineBackup = () => repository.backup({ host: 'memu-bench', stack: { memuOs: 'bench' }, files: { baseDir: dataDir, paths: ['photos'] } });
    // Who goes first takes turns, so neither always meets a warmer disk or a busier machine.
    const pair = async (plain: Measured[], engine: Measured[]) => {
      const steps: [() => Promise<unknown>, Measured[]][] = [
        [plainBackup, plain],
        [engineBackup, engine],
      ];
      for (const [run, into] of round % 2 === 0 ? steps : steps.reverse()) {
        dropCaches();
        const m = await measured(run);
        into.push(m);
        if (into === results.engineIncremental) summary = (m.value as BackupRunResult).filesSummary;
      }
    };
    await pair(results.plainFirst, results.engineFirst);
    // 1 % of the photos rewritten with new bytes of the same size, as an edit or re-export would.
    const changed = photos.filter((_, i) => i % 100 === 50 - round);
    if (changed.length === 0) changed.push(photos[round % photos.length]!);
    changedCount = changed.length;
    for (const p of changed) await writeFile(p, randomBytes((await stat(p)).size));
    await pair(results.plainIncremental, results.engineIncremental);
    console.log(
      `round ${round + 1}: first ${results.engineFirst.at(-1)!.seconds.toFixed(2)} s / ${results.plainFirst.at(-1)!.seconds.toFixed(2)} s, ` +
        `incremental ${results.engineIncremental.at(-1)!.seconds.toFixed(2)} s / ${results.plainIncremental.at(-1)!.seconds.toFixed(2)} s (engine / plain)`,
    );
  }
  const median = (xs: Measured[], pick: (m: Measured) => number) => {
    const v = xs.map(pick).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  const seconds = (m: Measured) => m.seconds;
  const restic = (m: Measured) => m.resticPeakMiB;
  const engineFirst = { seconds: median(results.engineFirst, seconds), resticPeakMiB: median(results.engineFirst, restic) };
  const plainFirst = { seconds: median(results.plainFirst, seconds), resticPeakMiB: median(results.plainFirst, restic) };
  const engineIncremental = { seconds: median(results.engineIncremental, seconds), resticPeakMiB: median(results.engineIncremental, restic) };
  const plainIncremental = { seconds: median(results.plainIncremental, seconds), resticPeakMiB: median(results.plainIncremental, restic) };
  const agentBefore = results.engineFirst[0]!.agentBeforeMiB;
  const agentPeak = Math.max(...[...results.engineFirst, ...results.engineIncremental].map((m) => m.agentPeakMiB));

  const s = (x: number) => `${x.toFixed(2)} s`;
  const mib = (x: number) => `${x.toFixed(0)} MiB`;
  const rows: BenchRow[] = [
    [`first backup, ${(SIZE / 1024 ** 3).toFixed(2)} GiB in ${photos.length} files`, s(engineFirst.seconds), s(plainFirst.seconds), ratio(engineFirst.seconds, plainFirst.seconds)],
    [`incremental, ${changedCount} files (1 %) rewritten`, s(engineIncremental.seconds), s(plainIncremental.seconds), ratio(engineIncremental.seconds, plainIncremental.seconds)],
    ['restic peak RSS, first backup', mib(engineFirst.resticPeakMiB), mib(plainFirst.resticPeakMiB), ratio(engineFirst.resticPeakMiB, plainFirst.resticPeakMiB)],
    ['restic peak RSS, incremental', mib(engineIncremental.resticPeakMiB), mib(plainIncremental.resticPeakMiB), ratio(engineIncremental.resticPeakMiB, plainIncremental.resticPeakMiB)],
    [`agent (node) peak RSS during the runs (${mib(agentBefore)} before)`, mib(agentPeak), '—', '—'],
  ];
  console.log(`\nmedians of ${ROUNDS} rounds:`);
  printBenchTable(rows);
  console.log();
  console.log(`making the engine's repository (restic version + init, once; not in the times above): ${s(openSeconds)}`);
  if (summary) console.log(`engine's last incremental: ${summary.filesNew} new, ${summary.filesChanged} changed, ${summary.filesUnmodified} unmodified, ${(summary.dataAdded / MiB).toFixed(1)} MiB added`);
  console.log(`the engine's extra work per run: the manifest written and backed up inside the same last snapshot (no extra restic run for a files-only set)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
