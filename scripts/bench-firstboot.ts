#!/usr/bin/env -S npx tsx
/**
 * First-boot benchmark.
 *
 *   scripts/bench-firstboot.ts [--cache-dir DIR] [--idle-seconds N]
 *
 * Builds the qemu-amd64 image with the test stack (three busybox services and an nginx
 * front door, from a local registry, pinned by `memu stack lock`, preloaded by `memu build
 * --stack`), preseeds an API key, boots it once under QEMU (TCG, no network, 8 GiB drive)
 * and prints, each with a reference measured in the same run:
 *   1. boot to every service healthy, against the same boot reaching systemd's default
 *      target (the operating system's own boot), both from the kernel's start in the guest
 *      (its uptime, and `systemd-analyze time`);
 *   2. time the first boot spends making the preloaded images available once Docker is up,
 *      against `docker load` of the same images as archives on this (faster) host;
 *   3. the idle agent's resident memory after provisioning, and again with the setup
 *      wizard's pages loaded, against a bare Node.js with the agent's flags in the same VM
 *      (a unit the benchmark adds with --overlay; both read with ps through the QEMU guest
 *      agent), the agent's CPU share over 15 idle minutes, the health checks' share of
 *      it, and how soon after the agent starts its first complete health answer is
 *      ready; on stderr, where the
 *      memory is (RssAnon/RssFile and the largest mappings of both processes) and the
 *      agent's start as its journal tells it (loading, each module, the first round);
 *   4. a no-op reconcile of a 12-service stack (scripts/bench-reconcile.ts).
 * Machines here are noisy: compare the ratios, not the seconds.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadProfile } from '../hardware/index.ts';
import type { ImageLock } from '../shared/contracts/image-lock.ts';
import { createHostLogger } from '../image/host/log.ts';
import { exportImageArchives } from '../image/preload/preload.ts';
import { startThrowawayDockerd } from '../image/preload/throwaway-dockerd.ts';
import { startVm, waitForAgent, type RunningVm } from '../image/vm/run-vm.ts';
import { buildQemuImage, runMemu } from '../test/helpers/memu-build.ts';
import { startTestRegistry } from '../test/helpers/oci-registry.ts';
import { isStackUp, writeTestStack, type StackHealthz } from '../test/helpers/test-stack.ts';
import { readAgentUnitCommand } from './agent-unit-command.ts';
import { printBenchTable, ratio, type BenchRow } from './bench-table.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const cacheDir = args.includes('--cache-dir') ? args[args.indexOf('--cache-dir') + 1]! : '/var/tmp/memu-bench-cache';
process.env.MEMU_TEST_CACHE_DIR ??= cacheDir;
const log = createHostLogger({ json: true, level: 'warn' });
const HTTP_PORT = 18493;
const API_KEY = 'bench-firstboot-key-0123456789abcdefghijk';
/**
 * The idle span the CPU shares are averaged over: by default 15 minutes, the longest
 * interval of a check that runs this often (failed units, and timedated's answer for the
 * clock on this offline VM: one fork each per window). `--idle-seconds N` shortens it when
 * only the memory figures matter.
 */
const IDLE_WINDOW_SECONDS = args.includes('--idle-seconds') ? Number(args[args.indexOf('--idle-seconds') + 1]) : 900;

/** An overlay with a unit running a bare node with the agent's flags, doing nothing. */
async function bareNodeOverlay(dir: string): Promise<void> {
  const flags = (await readAgentUnitCommand()).nodeFlags.join(' ');
  const script = 'setInterval(() => {}, 10000)';
  await mkdir(join(dir, 'etc/systemd/system'), { recursive: true });
  const unit = ['[Unit]', 'Description=Benchmark reference: a bare node with the agent\'s flags', '', '[Service]', `ExecStart=/usr/bin/node ${flags} -e "${script}"`, ''].join('\n');
  await writeFile(join(dir, 'etc/systemd/system/memu-bench-bare-node.service'), unit);
}

/** Resident memory of a unit's main process, read with ps inside the guest (QEMU guest agent). */
async function serviceRssBytes(vm: RunningVm, unit: string): Promise<number> {
  const pid = (await vm.guest.shell(`systemctl show -p MainPID --value ${unit}`)).trim();
  if (pid === '0') throw new Error(`${unit} is not running:\n${(await vm.guest.exec(['systemctl', 'status', '--no-pager', '-l', unit])).stdout}`);
  const kib = Number((await vm.guest.shell(`ps -o rss= -p ${pid}`)).trim());
  if (!(kib > 0)) throw new Error(`no resident memory for ${unit} (pid ${pid})`);
  return kib * 1024;
}

/** Kernel start to the default target (graphical, which includes multi-user) as `systemd-analyze time` reports it. */
async function defaultTargetMs(vm: RunningVm): Promise<number> {
  for (let tries = 0; tries < 300; tries++) {
    const r = await vm.guest.exec(['systemd-analyze', 'time']);
    if (r.exitCode === 0) {
      const kernel = /in (.+?) \(kernel\)/.exec(r.stdout)?.[1];
      const reached = /\.target reached after (.+) in userspace/.exec(r.stdout)?.[1];
      if (!kernel || !reached) throw new Error(`cannot read systemd-analyze time: ${r.stdout}`);
      return parseSystemdDuration(kernel) + parseSystemdDuration(reached);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  throw new Error('systemd in the guest never finished booting (systemd-analyze time kept failing)');
}

/** "1min 2.345s", "850ms", "3.2s" → milliseconds. */
function parseSystemdDuration(text: string): number {
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/([\d.]+)(min|ms|s|h|us)/g)) ms += Number(n) * { h: 3_600_000, min: 60_000, s: 1000, ms: 1, us: 0.001 }[unit as 'h' | 'min' | 's' | 'ms' | 'us'];
  return ms;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

const work = await mkdtemp('/var/tmp/memu-bench-firstboot-');
const registry = await startTestRegistry({ port: 18351 });
const rows: BenchRow[] = [];
try {
  const stackDir = await writeTestStack(registry, join(work, 'stack'));
  const overlay = join(work, 'overlay');
  await bareNodeOverlay(overlay);
  const build = await buildQemuImage(join(work, 'out'), ['--stack', stackDir, '--overlay', overlay]);
  const settings = join(work, 'settings.json');
  await writeFile(settings, JSON.stringify({ version: 1, agentApiKey: API_KEY }));
  const preseed = await runMemu(['preseed', '--image', build.image, '--file', settings]);
  if (preseed.code !== 0) throw new Error(`memu preseed failed:\n${preseed.stderr}`);

  // 1. One boot: the OS's own boot (serial console) and the stack's.
  const started = Date.now();
  const vm = await startVm({ image: build.image, profile: loadProfile('qemu-amd64'), workDir: join(work, 'vm'), diskSizeBytes: 8 * 1024 ** 3, noNetwork: true, httpPort: HTTP_PORT, log });
  const answer = await waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs: 20 * 60_000, pollMs: 500, isReady: (a) => isStackUp(a.report!) });
  const stackUpMs = Date.now() - started;
  // Both from the kernel's start, in the guest: its uptime when the stack was seen up, and
  // the operating system's own boot to its default target as systemd measured it.
  const stackUpUptimeMs = Number((await vm.guest.shell('cat /proc/uptime')).split(' ')[0]) * 1000;
  const multiUserMs = await defaultTargetMs(vm);
  rows.push(['kernel start to every service healthy (TCG)', seconds(stackUpUptimeMs), `kernel start to the default target, same boot (systemd-analyze) ${seconds(multiUserMs)}`, ratio(stackUpUptimeMs, multiUserMs)]);
  rows.push(['QEMU start to every service healthy (with firmware and loader)', seconds(stackUpMs), '', '']);

  // 2. Preloaded images at first boot, against loading archives.
  const t = (answer.report as unknown as StackHealthz).stack.bringUp!;
  const lock = JSON.parse(await readFile(join(stackDir, 'images.lock.json'), 'utf8')) as ImageLock;
  const images = Object.entries(lock.images).map(([reference, e]) => ({ service: reference, reference, digest: e.platforms['linux/amd64']!, indexDigest: e.index }));
  const archive = join(work, 'images.tar');
  await exportImageArchives({ images, platform: 'linux/amd64', cacheDir: join(cacheDir, 'blobs'), outFile: archive, log });
  // The VM never reaches it (no network); the reference's archives may need its blobs.
  await registry.stop();
  const dockerd = await startThrowawayDockerd({ dataRoot: join(work, 'load-root'), log });
  const loadStarted = Date.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn('docker', ['-H', dockerd.host, 'load', '-i', archive], { stdio: 'ignore' });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`docker load: exit ${code}`))));
  });
  const loadSeconds = (Date.now() - loadStarted) / 1000;
  await dockerd.stop();
  // Docker's own start-up is paid either way; what preloading saves is the load after it.
  const preloadedSeconds = t.imagesAvailableSeconds - t.dockerReadySeconds;
  rows.push(['images present once Docker is up (preloaded)', `${preloadedSeconds.toFixed(2)} s`, `docker load of the archives, this host ${loadSeconds.toFixed(2)} s`, ratio(preloadedSeconds, loadSeconds)]);

  // 3. The idle agent, against a bare node with its flags in the same VM (started now, so
  // both have idled as long when measured).
  await vm.guest.shell('systemctl start memu-bench-bare-node.service');
  const report = async () => (await waitForAgent({ httpPort: HTTP_PORT, apiKey: API_KEY, timeoutMs: 60_000 })).report as unknown as StackHealthz;
  await new Promise((r) => setTimeout(r, 30_000));
  const a = await report();
  await new Promise((r) => setTimeout(r, IDLE_WINDOW_SECONDS * 1000));
  const b = await report();
  // 4. The agent with its web pages loaded: the wizard's pages through the front door.
  const front = `http://127.0.0.1:${HTTP_PORT}`;
  for (let i = 0; i < 20; i++) for (const path of ['/admin/setup/claim', '/admin/login', '/admin/assets/memu.css']) await (await fetch(`${front}${path}`, { headers: { accept: 'text/html' } })).text();
  await new Promise((r) => setTimeout(r, 10_000));
  const loaded = await report();
  // Where the first answer's time went: the agent's first lines, with the guest's clock.
  const firstLines = await vm.guest.shell("journalctl -b -u memu-agent -o short-monotonic --no-pager | grep -E 'Starting|Started|modules started|memu-agent started|first health round' | head -n 6");
  process.stderr.write(`the agent's start in the guest's journal:\n${firstLines}\n`);
  const firstRound = JSON.parse((await vm.guest.shell("journalctl -b -u memu-agent -o cat --no-pager | grep -m1 'first health round'")) || '{}') as { ms?: number; checks?: Record<string, number> };
  // Where the memory is: anonymous against file-backed, and the largest mappings.
  for (const unit of ['memu-agent.service', 'memu-bench-bare-node.service']) {
    const where = await vm.guest.shell(
      `pid=$(systemctl show -p MainPID --value ${unit}); grep -E '^Rss' /proc/$pid/status | tr -s ' \\t' ' ' | tr '\\n' ' '; echo; ` +
        `awk '/^[0-9a-f]+-[0-9a-f]+ /{n=$6; if(n=="")n="[anon]"} /^Rss:/{r[n]+=$2} END{for(k in r) if(r[k]>=1024) printf "  %6d kB %s\\n", r[k], k}' /proc/$pid/smaps | sort -rn | head -n 8`,
    );
    process.stderr.write(`${unit}: ${where}\n`);
  }
  const bareRss = await serviceRssBytes(vm, 'memu-bench-bare-node.service');
  const agentRss = await serviceRssBytes(vm, 'memu-agent.service');
  await vm.stop(60_000);
  rows.push(['idle agent resident memory', mib(b.agent!.rssBytes), `bare node, same flags, same VM ${mib(bareRss)}`, ratio(b.agent!.rssBytes, bareRss)]);
  const split = loaded.agent!;
  rows.push(['  of which V8\'s heap (used / reserved), memory outside it', `${mib(split.heapUsedBytes ?? 0)} / ${mib(split.heapTotalBytes ?? 0)}, ${mib(split.externalBytes ?? 0)}`, '', '']);
  rows.push(['agent resident memory, web pages loaded (ps in the guest)', mib(agentRss), `bare node, same flags, same VM ${mib(bareRss)}`, ratio(agentRss, bareRss)]);
  rows.push([`idle agent CPU share (${IDLE_WINDOW_SECONDS} s, emulated CPU)`, `${(((b.agent!.cpuSeconds - a.agent!.cpuSeconds) / IDLE_WINDOW_SECONDS) * 100).toFixed(2)} %`, '', '']);
  const rounds = (r: StackHealthz) => (r.agent as { healthRounds?: { cpuSeconds: number; firstAfterStartSeconds?: number } } | undefined)?.healthRounds;
  const checksShare = ((rounds(b)!.cpuSeconds - rounds(a)!.cpuSeconds) / IDLE_WINDOW_SECONDS) * 100;
  rows.push([`health checks' CPU share of one core (${IDLE_WINDOW_SECONDS} s idle)`, `${checksShare.toFixed(2)} %`, '', '']);
  rows.push(['first complete health answer after the agent started', `${rounds(b)!.firstAfterStartSeconds!.toFixed(2)} s`, '', '']);
  const slowest = Object.entries(firstRound.checks ?? {}).sort((x, y) => y[1] - x[1])[0];
  rows.push(['  of which the first round of checks (its slowest check)', firstRound.ms === undefined ? 'not logged' : `${seconds(firstRound.ms)} (${slowest ? `${slowest[0]} ${seconds(slowest[1])}` : 'none'})`, '', '']);
} finally {
  await registry.stop().catch(() => {});
  await rm(work, { recursive: true, force: true });
}

printBenchTable(rows);
console.log('\nno-op reconcile, 12 services (scripts/bench-reconcile.ts):');
const reconcile = spawn(join(repo, 'scripts/bench-reconcile.ts'), [], { cwd: repo, stdio: 'inherit' });
await new Promise((resolve) => reconcile.on('close', resolve));
