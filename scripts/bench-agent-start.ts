#!/usr/bin/env -S npx tsx
/**
 * The agent's start at native speed.
 *
 *   scripts/bench-agent-start.ts [--cache-dir DIR] [--runs N]
 *
 * scripts/bench-firstboot.ts measures the first health answer under QEMU's TCG, which
 * emulates the CPU about 40 times slower than this host runs it. This benchmark runs the
 * same program natively: the qemu-amd64 root filesystem (Debian trixie's node, from the
 * build cache) with the agent's bundle and SQLite addon laid on it through an overlay
 * mount, the agent started with its unit's command line in a chroot with its own mount
 * and PID namespaces, against a throwaway dockerd, with a fresh data directory each run
 * (a first boot: no layout, so provisioning reports and the rest starts). It prints, as
 * the median of N runs: how long node takes to load the bundle, to start every module,
 * and to finish the first complete round of health checks, each from the process's
 * start, against node reaching the first line of an empty program with the same flags
 * in the same chroot; and, in the last run, the server time of the first pages a family
 * sees (median and p95 of 200 requests each), as the agent's V8 flags make it.
 *
 * Nothing of the host is touched: the chroot's writes land in the overlay's upper
 * directory, removed afterwards. A Raspberry Pi 5's core is slower than this host's, so
 * these are not the Pi's figures; no Pi is attached here.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadProfile } from '../hardware/index.ts';
import { createHostLogger } from '../image/host/log.ts';
import { bundleAgent, projectVersion } from '../image/pipeline/agent-bundle.ts';
import { buildRootfs } from '../image/pipeline/rootfs.ts';
import { defaultSourceDateEpoch } from '../image/pipeline/pipeline.ts';
import { startThrowawayDockerd } from '../image/preload/throwaway-dockerd.ts';
import { runCommand } from '../shared/process/run-command.ts';
import { AGENT_BUNDLE_NAME, AGENT_INSTALL_DIR } from '../shared/contracts/agent-install.ts';
import { readAgentUnitCommand } from './agent-unit-command.ts';
import { printBenchTable, ratio, type BenchRow } from './bench-table.ts';

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const cacheDir = option('--cache-dir', '/var/tmp/memu-bench-cache');
const runs = Number(option('--runs', '5'));
const log = createHostLogger({ json: true, level: 'warn' });
const AGENT_PORT = 18611;

const { nodeFlags, glibcTunables } = await readAgentUnitCommand();

const profile = loadProfile('qemu-amd64');
const rootfs = await buildRootfs({ profile, sourceDateEpoch: await defaultSourceDateEpoch(), cacheDir, log });
const bundle = await bundleAgent({ version: await projectVersion(), arch: profile.arch, cacheDir, log });

const work = await mkdtemp('/var/tmp/memu-bench-agent-start-');
const dockerd = await startThrowawayDockerd({ dataRoot: join(work, 'docker'), log });

interface AgentStart {
  loadedSeconds: number;
  startedSeconds: number;
  firstRoundSeconds: number;
  roundMs: number;
}

/** One run in a fresh overlay: the agent's JSON log lines give each moment relative to its process start. */
async function startAgentOnce(run: number, afterFirstRound?: () => Promise<void>): Promise<AgentStart> {
  const dir = join(work, `run-${run}`);
  const [upper, workdir, merged] = ['upper', 'work', 'merged'].map((n) => join(dir, n)) as [string, string, string];
  for (const d of [upper, workdir, merged]) await mkdir(d, { recursive: true });
  await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${rootfs.tree},upperdir=${upper},workdir=${workdir}`, merged]);
  try {
    await mkdir(join(merged, AGENT_INSTALL_DIR), { recursive: true });
    for (const f of bundle.files) await writeFile(join(merged, AGENT_INSTALL_DIR, f.name), f.contents);
    await mkdir(join(merged, 'run/memu'), { recursive: true });
    // /run, not /var/run: the latter is an absolute symbolic link, which outside the chroot leads to the host's.
    await writeFile(join(merged, 'run/docker.sock'), '');
    await runCommand('mount', ['--bind', dockerd.socketPath, join(merged, 'run/docker.sock')]);
    const lines = await runUntilFirstRound(merged, afterFirstRound);
    const started = lines.find((l) => l.msg === 'memu-agent started');
    const round = lines.find((l) => l.msg === 'first health round done');
    if (!started || !round) throw new Error(`the agent did not log its start and first round:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    const processStart = (started.time as number) - (started.startedAfterSeconds as number) * 1000;
    return {
      loadedSeconds: started.loadedAfterSeconds as number,
      startedSeconds: started.startedAfterSeconds as number,
      firstRoundSeconds: ((round.time as number) - processStart) / 1000,
      roundMs: round.ms as number,
    };
  } finally {
    await runCommand('umount', ['-R', merged]).catch(() => runCommand('umount', ['-l', merged]));
  }
}

/** The agent in the chroot, stopped once it logged its first complete health round (and `afterFirstRound` is done). */
function runUntilFirstRound(root: string, afterFirstRound?: () => Promise<void>): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'unshare',
      ['--mount', '--pid', '--fork', '--kill-child', `--mount-proc=${join(root, 'proc')}`, 'chroot', root, '/usr/bin/node', ...nodeFlags, `/${AGENT_INSTALL_DIR}/${AGENT_BUNDLE_NAME}`],
      {
        env: {
          PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
          NODE_ENV: 'production',
          ...(glibcTunables ? { GLIBC_TUNABLES: glibcTunables } : {}),
          MEMU_AGENT_PORT: String(AGENT_PORT),
          MEMU_AGENT_DOCKER_BRIDGE: '0',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const lines: Record<string, unknown>[] = [];
    let pending = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        try {
          const parsed = JSON.parse(line) as Record<string, unknown>;
          lines.push(parsed);
          // The agent's graceful stop is not part of this benchmark.
          if (parsed.msg === 'first health round done') {
            void (afterFirstRound ?? (async () => {}))()
              .catch((err: unknown) => lines.push({ msg: 'stderr', stderr: `while the agent ran: ${String(err)}` }))
              .finally(() => child.kill('SIGKILL'));
          }
        } catch {
          // not a log line
        }
      }
    });
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      if (stderr.trim()) lines.push({ msg: 'stderr', stderr: stderr.trim() });
      resolve(lines);
    });
  });
}

/** How long node with the agent's flags takes, in the same root, to reach the first line of a program: what any Node program pays before its own code. */
async function bareNodeSeconds(): Promise<number> {
  const { stdout } = await runCommand('chroot', [rootfs.tree, '/usr/bin/node', ...nodeFlags, '-e', 'process.stdout.write(String(process.uptime()))']);
  return Number(stdout);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const percentile95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.ceil(xs.length * 0.95) - 1]!;

/**
 * The pages a family sees first, asked of the agent itself (no front door) with its
 * unit's flags: 20 requests each to warm up, then PAGE_REQUESTS, timed to the last byte.
 */
const PAGES = ['/admin/setup/claim', '/admin/login', '/admin/assets/memu.css'];
const PAGE_REQUESTS = 200;
const pageMs = new Map<string, number[]>();
async function timePages(): Promise<void> {
  for (const path of PAGES) {
    const times: number[] = [];
    for (let i = 0; i < 20 + PAGE_REQUESTS; i++) {
      const started = process.hrtime.bigint();
      const res = await fetch(`http://127.0.0.1:${AGENT_PORT}${path}`, { headers: { accept: 'text/html' } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
      if (i >= 20) times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    pageMs.set(path, times);
  }
}
try {
  const starts: AgentStart[] = [];
  const bare: number[] = [];
  for (let i = 0; i < runs; i++) {
    starts.push(await startAgentOnce(i, i === runs - 1 ? timePages : undefined));
    bare.push(await bareNodeSeconds());
  }
  const s = (pick: (a: AgentStart) => number) => median(starts.map(pick));
  const node = median(bare);
  const rows: BenchRow[] = [
    ['bundle loaded (from process start)', `${s((a) => a.loadedSeconds).toFixed(2)} s`, `node reaching a program's first line, same flags and root ${node.toFixed(2)} s`, ratio(s((a) => a.loadedSeconds), node)],
    ['every module started', `${s((a) => a.startedSeconds).toFixed(2)} s`, '', ''],
    ['first complete health answer', `${s((a) => a.firstRoundSeconds).toFixed(2)} s`, '', ''],
    ['  of which the first round itself', `${(s((a) => a.roundMs) / 1000).toFixed(2)} s`, '', ''],
  ];
  for (const [path, times] of pageMs) rows.push([`page ${path}: median / p95 server time`, `${median(times).toFixed(1)} / ${percentile95(times).toFixed(1)} ms`, '', '']);
  console.log(`agent start at native speed, median of ${runs} runs (flags: ${nodeFlags.join(' ')}):`);
  printBenchTable(rows);
  console.log('targets: first complete health answer < 5 s; page p95 < 50 ms');
} finally {
  await dockerd.stop();
  await rm(work, { recursive: true, force: true });
}
