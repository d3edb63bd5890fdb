/**
 * The stack reconciler against the real dockerd: fresh start, idempotence, single-service
 * recreation, repair, health gates, crash-loop backoff, out-of-memory kills, exclusive work and the clear errors. Images are
 * built locally from Debian's busybox-static (test/helpers/docker-fixtures.ts); no
 * registry is reachable while the reconciler runs, as on a device's first boot.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStackReconciler, type ReconcileResult, type StackReconcilerOptions } from '../../../../agent/stack/reconciler.ts';
import { stackHealthReasons } from '../../../../agent/stack/stack-health.ts';
import type { StackHold } from '../../../../agent/stack/index.ts';
import {
  containersByService,
  dockerClient,
  ensureTestImages,
  removeStack,
  uniqueProject,
  writeProject,
  withTestRegistry,
  type TestImages,
} from '../../../helpers/docker-fixtures.ts';

const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const docker = dockerClient();
let images: TestImages;
const projects: string[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  images = await ensureTestImages();
});

afterAll(async () => {
  for (const project of projects) await removeStack(project);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A long-running busybox command that exits promptly on SIGTERM. */
const SLEEPER = `["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; sleep 3600 & wait"]`;

async function project(prefix: string, files: Record<string, string>) {
  const name = uniqueProject(prefix);
  projects.push(name);
  const dir = await writeProject(files);
  dirs.push(dir);
  return { name, dir };
}

function reconciler(dir: string, name: string, extra: Partial<StackReconcilerOptions> = {}) {
  return createStackReconciler({
    docker,
    log,
    composeFiles: [join(dir, 'compose.yaml')],
    projectName: name,
    variables: { IMAGE: images.busybox.reference },
    imageLock: images.lock,
    platform: images.platform,
    timeLimitMs: 60_000,
    ...extra,
  });
}

function actions(result: ReconcileResult) {
  return result.executed.filter((e) => e.step.kind !== 'waitHealthy').map((e) => e.description);
}

/** Polls `check` until it holds; fails after `timeoutMs`. */
async function until(check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Docker's own record of how often the container was started after `sinceMs` (epoch ms). */
async function startsSince(containerId: string, sinceMs: number): Promise<number> {
  const stream = await docker.getEvents({
    since: Math.floor(sinceMs / 1000) - 1,
    until: Math.ceil(Date.now() / 1000),
    filters: { container: [containerId], event: ['start'] },
  });
  const text = await new Promise<string>((resolve) => {
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString()));
    stream.on('end', () => resolve(out));
  });
  const events = text.split('\n').filter((line) => line.trim()).map((line) => JSON.parse(line) as { timeNano: number });
  return events.filter((e) => e.timeNano / 1e6 > sinceMs).length;
}

const SLEEPER_APP = `services:\n  app:\n    image: \${IMAGE}\n    command: ${SLEEPER}\n    restart: unless-stopped\n`;

describe('stack reconciler (real dockerd)', () => {
  const compose = (greeting: string) => `
services:
  db:
    image: \${IMAGE}
    command: ${SLEEPER}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 2s
      retries: 3
    restart: unless-stopped
    volumes:
      - dbdata:/data
  web:
    image: \${IMAGE}
    command: httpd -f -p 8080 -h /www
    ports: ["127.0.0.1:18201:8080"]
    depends_on:
      db:
        condition: service_healthy
    restart: unless-stopped
    stop_grace_period: 1s
  worker:
    image: \${IMAGE}
    command: ${SLEEPER}
    env_file: worker.env
    environment:
      GREETING: ${greeting}
    depends_on: [web]
    networks: [default, backend]
    restart: unless-stopped
networks:
  backend: {}
volumes:
  dbdata: {}
`;

  let dir: string;
  let name: string;
  let stack: ReturnType<typeof reconciler>;
  const ids: Record<string, string> = {};

  it('brings a fresh stack up: networks, volume, containers, healthy dependency first, published port', async () => {
    ({ dir, name } = await project('fresh', { 'compose.yaml': compose('hello'), 'worker.env': 'FROM_FILE=yes\n' }));
    stack = reconciler(dir, name);
    const result = await stack.reconcileOnce();
    expect(result.error).toBeUndefined();
    expect(result.converged).toBe(true);
    const done = actions(result);
    // db must be healthy before web starts: web's start comes after a health wait on db.
    const waitIndex = result.executed.findIndex((e) => e.step.kind === 'waitHealthy' && e.step.service === 'db');
    const webStart = result.executed.findIndex((e) => e.step.kind === 'startContainer' && e.step.service === 'web');
    expect(waitIndex).toBeGreaterThanOrEqual(0);
    expect(webStart).toBeGreaterThan(waitIndex);
    expect(done).toContain(`create network ${name}_backend`);
    expect(done).toContain(`create volume ${name}_dbdata`);

    expect(stack.status().services).toMatchObject({
      db: { state: 'healthy' },
      web: { state: 'running' },
      worker: { state: 'running' },
    });
    const containers = await containersByService(name);
    for (const service of ['db', 'web', 'worker']) {
      expect(containers[service]?.State).toBe('running');
      expect(containers[service]?.Image).toBe(images.busybox.pinned);
      ids[service] = containers[service]!.Id;
    }
    const page = await fetch('http://127.0.0.1:18201/').then((r) => r.text());
    expect(page).toContain('memu test page');
    const worker = await docker.getContainer(ids.worker!).inspect();
    expect(worker.Config.Env).toEqual(expect.arrayContaining(['FROM_FILE=yes', 'GREETING=hello']));
    expect(Object.keys(worker.NetworkSettings.Networks).sort()).toEqual([`${name}_backend`, `${name}_default`]);
  });

  it('does nothing on a second converge', async () => {
    const result = await stack.reconcileOnce();
    expect(result.converged).toBe(true);
    expect(result.executed).toEqual([]);
    expect(result.iterations).toBe(1);
  });

  it('recreates only the service whose configuration changed', async () => {
    await writeFile(join(dir, 'compose.yaml'), compose('bonjour'));
    const result = await stack.reconcileOnce();
    expect(result.converged).toBe(true);
    expect(actions(result).every((a) => a.includes('worker'))).toBe(true);
    const containers = await containersByService(name);
    expect(containers.db!.Id).toBe(ids.db);
    expect(containers.web!.Id).toBe(ids.web);
    expect(containers.worker!.Id).not.toBe(ids.worker);
    const worker = await docker.getContainer(containers.worker!.Id).inspect();
    expect(worker.Config.Env).toContain('GREETING=bonjour');
    ids.worker = containers.worker!.Id;
  });

  it('restores a killed container and recreates a removed one', async () => {
    await docker.getContainer(ids.web!).kill();
    await docker.getContainer(ids.worker!).remove({ force: true });
    const result = await stack.reconcileOnce();
    expect(result.converged).toBe(true);
    const containers = await containersByService(name);
    expect(containers.web!.Id).toBe(ids.web);
    expect(containers.web!.State).toBe('running');
    expect(containers.worker!.State).toBe('running');
    expect(await fetch('http://127.0.0.1:18201/').then((r) => r.status)).toBe(200);
  });

  it('removes services and networks the stack no longer names, keeping named volumes', async () => {
    const withoutWorker = compose('bonjour').replace(/  worker:[\s\S]*?restart: unless-stopped\n/, '').replace(/networks:\n  backend: \{\}\n/, '');
    await writeFile(join(dir, 'compose.yaml'), withoutWorker);
    const result = await stack.reconcileOnce();
    expect(result.converged).toBe(true);
    const containers = await containersByService(name);
    expect(Object.keys(containers).sort()).toEqual(['db', 'web']);
    expect((await docker.listNetworks({ filters: { name: [`${name}_backend`] } })).length).toBe(0);
    await writeFile(join(dir, 'compose.yaml'), withoutWorker.replace(/    volumes:\n      - dbdata:\/data\n/, '').replace(/volumes:\n  dbdata: \{\}\n/, ''));
    await stack.reconcileOnce();
    expect((await docker.listVolumes({ filters: { name: [`${name}_dbdata`] } })).Volumes).toHaveLength(1);
    const removing = reconciler(dir, name, { removeVolumes: true });
    await removing.reconcileOnce();
    expect((await docker.listVolumes({ filters: { name: [`${name}_dbdata`] } })).Volumes ?? []).toHaveLength(0);
  });
});

describe('health gates and crash loops (real dockerd)', () => {
  it('does not start the dependents of an unhealthy dependency, and says why', async () => {
    const { name, dir } = await project('unhealthy', {
      'compose.yaml': `
services:
  db:
    image: \${IMAGE}
    command: ${SLEEPER}
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/never"]
      interval: 1s
      timeout: 1s
      retries: 2
    restart: unless-stopped
  app:
    image: \${IMAGE}
    command: ${SLEEPER}
    depends_on:
      db: { condition: service_healthy }
    restart: unless-stopped
`,
    });
    const stack = reconciler(dir, name, { timeLimitMs: 30_000 });
    const result = await stack.reconcileOnce();
    expect(result.converged).toBe(false);
    expect(result.services.db).toMatchObject({ state: 'unhealthy' });
    expect(result.services.app).toMatchObject({ state: 'waiting', for: ['db'] });
    expect(result.services.app?.state === 'waiting' && result.services.app.reason).toMatch(/db is unhealthy/);
    // The unhealthy db was restarted once, then backed off instead of being restarted again.
    expect(result.executed.filter((e) => e.step.kind === 'restartContainer')).toHaveLength(1);
    expect(result.waiting.some((s) => s.kind === 'backoff' && s.service === 'db')).toBe(true);
    const containers = await containersByService(name);
    expect(containers.app?.State ?? 'absent').not.toBe('running');
  });

  it('backs off a crashing service, counting down "restarting in N s", instead of restarting it at full speed', async () => {
    const { name, dir } = await project('crashloop', {
      'compose.yaml': `
services:
  flaky:
    image: \${IMAGE}
    command: ["sh", "-c", "exit 3"]
    restart: always
  steady:
    image: \${IMAGE}
    command: ${SLEEPER}
    restart: always
`,
    });
    const since = Date.now();
    const stack = reconciler(dir, name, { eventDebounceMs: 50 });
    stack.start();
    await new Promise((r) => setTimeout(r, 6000));
    await stack.stop();
    const status = stack.status().services;
    // Two restarts are a backoff, not a crash loop: that takes 10 restarts in 30 minutes.
    expect(status.flaky).toMatchObject({ state: 'backing-off', exitCode: 3 });
    const countdown = /^flaky exited with code 3; restarting in (\d+) s$/.exec(status.flaky?.summary ?? '');
    expect(countdown, status.flaky?.summary).not.toBeNull();
    expect(Number(countdown![1])).toBeLessThanOrEqual(10);
    expect(status.steady).toMatchObject({ state: 'running' });
    const flaky = (await containersByService(name)).flaky!;
    // Docker's own record of starts: first start plus one immediate retry, then backoff (10 s).
    const starts = await startsSince(flaky.Id, since);
    expect(starts).toBeGreaterThanOrEqual(1);
    expect(starts).toBeLessThanOrEqual(2);
    if (status.flaky?.state === 'backing-off') expect(status.flaky.nextRetryAt).toBeGreaterThan(Date.now());
  });

  it('names a service the kernel killed for using more memory than its limit, and restarts it with backoff', async () => {
    const { name, dir } = await project('oom', {
      // 100 MB of "a" held in a shell variable, in a container allowed 8 MB: the kernel's OOM killer ends it.
      'compose.yaml': `services:\n  hungry:\n    image: \${IMAGE}\n    command: ["sh", "-c", "x=$$(head -c 100000000 /dev/zero | tr '\\\\0' a); sleep 3600"]\n    mem_limit: 8m\n    restart: always\n`,
    });
    const stack = reconciler(dir, name, { eventDebounceMs: 50 });
    stack.start();
    try {
      await until(() => stack.status().services.hungry?.state === 'backing-off', 30_000);
      const hungry = stack.status().services.hungry!;
      expect(hungry).toMatchObject({ state: 'backing-off', exitCode: 137, outOfMemory: true });
      expect(hungry.summary).toMatch(/^hungry ran out of memory and was stopped by the kernel \(exit code 137\); restarting in \d+ s$/);
      expect(stackHealthReasons(stack.status(), Date.now()).map((r) => r.code)).toEqual(['service-out-of-memory']);
    } finally {
      await stack.stop();
    }
  });

  it('calls a service crash-looping once the loop breaker trips, and leaves it alone', async () => {
    const { name, dir } = await project('looping', {
      'compose.yaml': `services:\n  flaky:\n    image: \${IMAGE}\n    command: ["sh", "-c", "exit 3"]\n    restart: always\n`,
    });
    // The device's rule is 10 restarts in 30 minutes; 3 with short delays makes the same rule quick to reach.
    const stack = reconciler(dir, name, { eventDebounceMs: 50, backoff: { baseDelayMs: 200, maxRestartsInWindow: 3, windowMs: 10 * 60_000 } });
    stack.start();
    try {
      await until(() => stack.status().services.flaky?.state === 'crash-looping', 30_000);
      const flaky = stack.status().services.flaky!;
      expect(flaky).toMatchObject({ state: 'crash-looping', exitCode: 3, restarts: 3 });
      expect(flaky.summary).toMatch(/^flaky is crash-looping \(exit code 3, restarted 3 times; left alone until .+\)$/);
    } finally {
      await stack.stop();
    }
  });
});

describe('the running loop (real dockerd)', () => {
  it('repairs a killed container within seconds, woken by Docker events rather than the interval', async () => {
    const { name, dir } = await project('loop', { 'compose.yaml': SLEEPER_APP });
    const stack = reconciler(dir, name, { intervalMs: 10 * 60_000, eventDebounceMs: 50 });
    stack.start();
    try {
      await until(async () => stack.status().services.app?.state === 'running');
      const { Id } = (await containersByService(name)).app!;
      const firstStart = (await docker.getContainer(Id).inspect()).State.StartedAt;
      await docker.getContainer(Id).kill();
      const killedAt = Date.now();
      await until(async () => {
        const state = (await docker.getContainer(Id).inspect()).State;
        return state.Running && state.StartedAt !== firstStart;
      });
      expect(Date.now() - killedAt).toBeLessThan(5000);
    } finally {
      await stack.stop();
    }
  });
});

describe('services held stopped for a whole-box restore (real dockerd)', () => {
  it('stops the held app and keeps it stopped through Docker events and reconciles, the other services running; starts it when lifted', async () => {
    const compose = `services:\n  app:\n    image: \${IMAGE}\n    command: ${SLEEPER}\n    restart: unless-stopped\n    labels: {org.memu.role: app}\n  proxy:\n    image: \${IMAGE}\n    command: ${SLEEPER}\n    restart: unless-stopped\n`;
    const { name, dir } = await project('held', { 'compose.yaml': compose });
    let hold: StackHold | undefined;
    const stack = reconciler(dir, name, { intervalMs: 200, eventDebounceMs: 50, hold: async () => hold });
    stack.start();
    try {
      await until(() => stack.status().services.app?.state === 'running' && stack.status().services.proxy?.state === 'running');
      const { app, proxy } = await containersByService(name);
      hold = { reason: "bringing back the family's backup", services: [], roles: ['app'] };
      await stack.reconcileOnce();
      expect((await docker.getContainer(app!.Id).inspect()).State.Running).toBe(false);
      // Many interval ticks later, still stopped; the other service never was.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await docker.getContainer(app!.Id).inspect()).State.Running).toBe(false);
      expect((await docker.getContainer(proxy!.Id).inspect()).State.Running).toBe(true);
      expect(stack.status().services.app).toMatchObject({ state: 'pending', summary: expect.stringContaining("held stopped: bringing back the family's backup") });
      hold = undefined;
      await until(async () => (await docker.getContainer(app!.Id).inspect()).State.Running);
    } finally {
      await stack.stop();
    }
  });
});

describe('exclusive work holds the stack still (real dockerd)', () => {
  it('a container killed while paused is not restarted until the exclusive work ends, then the loop repairs it', async () => {
    const { name, dir } = await project('paused', { 'compose.yaml': SLEEPER_APP });
    // A short interval and debounce: unpaused, the loop would restart the container within a fraction of a second.
    const stack = reconciler(dir, name, { intervalMs: 200, eventDebounceMs: 50 });
    stack.start();
    try {
      await until(() => stack.status().services.app?.state === 'running');
      const { Id } = (await containersByService(name)).app!;
      const killedAt = Date.now();
      await stack.runExclusive('backup', async () => {
        expect(stack.status().loop).toBe('paused: backup');
        await docker.getContainer(Id).kill();
        await until(async () => !(await docker.getContainer(Id).inspect()).State.Running);
        // Long enough for many interval ticks and for the kill's events to arrive.
        await new Promise((r) => setTimeout(r, 1500));
        expect((await docker.getContainer(Id).inspect()).State.Running).toBe(false);
        expect(await startsSince(Id, killedAt)).toBe(0);
      });
      expect(stack.status().loop).toBe('running');
      await until(async () => (await docker.getContainer(Id).inspect()).State.Running);
      expect(await startsSince(Id, killedAt)).toBe(1);
    } finally {
      await stack.stop();
    }
  });

  it('resumes with a reconcile also when the exclusive work throws', async () => {
    const { name, dir } = await project('pausethrow', { 'compose.yaml': SLEEPER_APP });
    const stack = reconciler(dir, name, { intervalMs: 10 * 60_000, eventDebounceMs: 50 });
    stack.start();
    try {
      await until(() => stack.status().services.app?.state === 'running');
      const { Id } = (await containersByService(name)).app!;
      const failing = stack.runExclusive('update', async () => {
        await docker.getContainer(Id).kill();
        await until(async () => !(await docker.getContainer(Id).inspect()).State.Running);
        throw new Error('the update failed');
      });
      await expect(failing).rejects.toThrow('the update failed');
      await until(async () => (await docker.getContainer(Id).inspect()).State.Running);
      expect(stack.status().loop).toBe('running');
    } finally {
      await stack.stop();
    }
  });

  it('a reconcile in flight finishes before the exclusive work starts', async () => {
    const { name, dir } = await project('inflight', {
      'compose.yaml': `
services:
  db:
    image: \${IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2; touch /tmp/ready; sleep 3600 & wait"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      timeout: 1s
      retries: 10
    restart: unless-stopped
  web:
    image: \${IMAGE}
    command: ${SLEEPER}
    depends_on:
      db: { condition: service_healthy }
    restart: unless-stopped
`,
    });
    const stack = reconciler(dir, name);
    let finished = false;
    const inFlight = stack.reconcileOnce().then((r) => ((finished = true), r));
    // In flight: db is up and the run waits on its healthcheck before it can start web.
    await until(async () => (await containersByService(name)).db?.State === 'running');
    expect(finished).toBe(false);
    const seen = await stack.runExclusive('update', async () => ({ finished, loop: stack.status().loop }));
    expect(seen).toEqual({ finished: true, loop: 'paused: update' });
    // Asked to wind down, it ended its health wait early instead of starting web.
    expect((await inFlight).converged).toBe(false);
    expect((await stack.reconcileOnce()).converged).toBe(true);
  });
});

describe('clear errors (real dockerd)', () => {
  it('names the service and image when a locked image is not on the device', async () => {
    const { name, dir } = await project('noimage', {
      'compose.yaml': `
services:
  present:
    image: \${IMAGE}
    command: ${SLEEPER}
  absent:
    image: example.org/memu/absent:1
`,
    });
    const lock = structuredClone(images.lock);
    lock.images['example.org/memu/absent:1'] = { platforms: { [images.platform]: `sha256:${'ab'.repeat(32)}` } };
    const result = await reconciler(dir, name, { imageLock: lock }).reconcileOnce();
    expect(result.services.present).toMatchObject({ state: 'running' });
    expect(result.services.absent).toMatchObject({ state: 'error' });
    const reason = result.services.absent?.state === 'error' ? result.services.absent.reason : '';
    expect(reason).toContain('service absent');
    expect(reason).toContain('example.org/memu/absent:1');
    expect(reason).toContain('is not on this device');
  });

  it('pulls a missing locked image only when allowPull is set', async () => {
    const pullable = await ensureTestImages('busybox-pull');
    const imageId = (await docker.getImage(pullable.busybox.pinned).inspect()).Id;
    await docker.getImage(imageId).remove({ force: true });
    const { name, dir } = await project('pull', {
      'compose.yaml': `services:\n  app:\n    image: \${IMAGE}\n    command: ${SLEEPER}\n`,
    });
    const options = { variables: { IMAGE: pullable.busybox.reference }, imageLock: pullable.lock };
    const offline = await reconciler(dir, name, options).reconcileOnce();
    expect(offline.services.app).toMatchObject({ state: 'error', reason: expect.stringContaining('is not on this device') });
    const online = await withTestRegistry(() => reconciler(dir, name, { ...options, allowPull: true }).reconcileOnce());
    expect(online.executed.map((e) => e.description)).toContain(`pull ${pullable.busybox.pinned} for app`);
    expect(online.services.app).toMatchObject({ state: 'running' });
  });

  it('refuses a compose key outside the supported subset, naming file, service and key', async () => {
    const { name, dir } = await project('badkey', {
      'compose.yaml': `
services:
  app:
    image: \${IMAGE}
    privileged: true
`,
    });
    const result = await reconciler(dir, name).reconcileOnce();
    expect(result.converged).toBe(false);
    expect(result.error).toContain(join(dir, 'compose.yaml'));
    expect(result.error).toContain('service "app"');
    expect(result.error).toContain('key "privileged" is not supported');
    expect(await containersByService(name)).toEqual({});
  });
});
