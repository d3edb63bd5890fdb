#!/usr/bin/env -S npx tsx
/**
 * No-op reconcile time for a 12-service stack against the real dockerd, compared in the
 * same run with the Docker API calls a reconcile cannot avoid: the ones readCurrentState
 * makes, issued in-process through the same dockerode client (the four lists with the
 * same filters, then one inspect per container and per network of the stack). What is
 * left between the two is the agent's own work: loading the compose files and the lock,
 * planning, recording. Target: a no-op reconcile under 200 ms.
 *
 *   scripts/bench-reconcile.ts [--runs N]
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import pino from 'pino';
import { STACK_LABEL, stackFilter } from '../agent/stack/labels.ts';
import { createStackReconciler } from '../agent/stack/reconciler.ts';
import { dockerClient, ensureTestImages, removeStack, uniqueProject, writeProject } from '../test/helpers/docker-fixtures.ts';

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 20;
const SERVICES = 12;
const SLEEPER = `["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; sleep 3600 & wait"]`;

function composeFor(): string {
  const lines = ['services:'];
  for (let i = 1; i <= SERVICES; i++) {
    const name = `svc${String(i).padStart(2, '0')}`;
    lines.push(`  ${name}:`, '    image: ${IMAGE}', `    command: ${SLEEPER}`, '    restart: unless-stopped');
    lines.push('    environment:', `      INDEX: "${i}"`, '    networks: [default, backend]');
    if (i % 3 === 1) {
      lines.push('    healthcheck:', '      test: ["CMD", "test", "-f", "/tmp/ready"]', '      interval: 2s', '      retries: 3');
    }
    if (i > 1) {
      const dep = `svc${String(i - 1).padStart(2, '0')}`;
      lines.push('    depends_on:', `      ${dep}: {condition: ${(i - 1) % 3 === 1 ? 'service_healthy' : 'service_started'}}`);
    }
    if (i === 1) lines.push('    volumes: ["data:/data"]', '    ports: ["127.0.0.1:18210:8080"]');
  }
  lines.push('networks:', '  backend: {}', 'volumes:', '  data: {}', '');
  return lines.join('\n');
}

/** The four lists readCurrentState starts with, in parallel as it makes them. */
async function listCalls(docker: Dockerode, project: string) {
  const [containers, networks] = await Promise.all([
    docker.listContainers({ all: true, filters: stackFilter(project) }),
    docker.listNetworks(),
    docker.listVolumes(),
    docker.listImages(),
  ]);
  return { containers, networks };
}

/** Every Docker call readCurrentState makes: the lists, then each container's and each stack network's inspect. */
async function allCalls(docker: Dockerode, project: string): Promise<void> {
  const { containers, networks } = await listCalls(docker, project);
  await Promise.all([
    ...containers.map((c) => docker.getContainer(c.Id).inspect()),
    ...networks.filter((n) => n.Labels?.[STACK_LABEL] === project).map((n) => docker.getNetwork(n.Id).inspect()),
  ]);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const docker = dockerClient();
const images = await ensureTestImages();
const project = uniqueProject('bench');
const dir = await writeProject({ 'compose.yaml': composeFor() });
const reconciler = createStackReconciler({
  docker,
  log: pino({ level: 'warn' }),
  composeFiles: [join(dir, 'compose.yaml')],
  projectName: project,
  variables: { IMAGE: images.busybox.reference },
  imageLock: images.lock,
  platform: images.platform,
});

try {
  const up = await reconciler.reconcileOnce();
  if (!up.converged) throw new Error(`stack did not converge: ${JSON.stringify(up.services)}`);
  console.log(`bench-reconcile: ${SERVICES}-service stack up from scratch in ${up.durationMs} ms (${up.executed.length} steps)`);

  // Warm-up, then measure each the same number of times, interleaved so drift hits all alike.
  await reconciler.reconcileOnce();
  await allCalls(docker, project);
  const noop: number[] = [];
  const lists: number[] = [];
  const calls: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    noop.push(
      await timed(async () => {
        const result = await reconciler.reconcileOnce();
        if (!result.converged || result.executed.length > 0) throw new Error(`run ${i} was not a no-op: ${JSON.stringify(result.executed)}`);
      }),
    );
    lists.push(await timed(() => listCalls(docker, project)));
    calls.push(await timed(() => allCalls(docker, project)));
  }
  const [mNoop, mLists, mCalls] = [median(noop), median(lists), median(calls)];
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const row = (label: string, value: string) => console.log(`${label.padEnd(42)} ${value}`);
  row(`no-op reconcile (${SERVICES} services):`, `median ${ms(mNoop)} over ${RUNS} runs (min ${ms(Math.min(...noop))}, max ${ms(Math.max(...noop))})`);
  row('its Docker API calls, in-process:', `median ${ms(mCalls)} (4 lists, then ${SERVICES} container and 2 network inspects)`);
  row('  of which the 4 list calls:', `median ${ms(mLists)}`);
  row('ratio no-op reconcile / its Docker calls:', (mNoop / mCalls).toFixed(2));
  row('ratio no-op reconcile / the 4 list calls:', (mNoop / mLists).toFixed(2));
  console.log(`target < 200 ms: ${mNoop < 200 ? 'met' : 'MISSED'}`);
  console.log(`agent process RSS after the runs: ${(process.memoryUsage().rss / 1024 / 1024).toFixed(1)} MiB`);
} finally {
  await removeStack(project);
  await rm(dir, { recursive: true, force: true });
}
