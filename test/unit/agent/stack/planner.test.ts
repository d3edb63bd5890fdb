/** The planner is pure: these tests feed it desired and current state and a clock, no Docker. */
import { describe, expect, it } from 'vitest';
import type { ImageLock } from '../../../../shared/contracts/image-lock.ts';
import { composeStackFromSources } from '../../../../shared/compose/load.ts';
import { containerBlueprint, networkBlueprint } from '../../../../agent/stack/container-spec.ts';
import type { CurrentContainer, CurrentState } from '../../../../agent/stack/current-state.ts';
import type { DesiredStack } from '../../../../shared/compose/desired-stack.ts';
import { planNextSteps, type PlanContext } from '../../../../agent/stack/planner.ts';
import { DEFAULT_BACKOFF, pruneRestartHistory, recordRestart, type RestartHistory } from '../../../../agent/stack/restart-backoff.ts';
import type { Step } from '../../../../agent/stack/steps.ts';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const lock: ImageLock = {
  format: 'memu-image-lock/1',
  images: {
    'registry.test/app:1': { platforms: { 'linux/amd64': DIGEST } },
    'registry.test/db:1': { platforms: { 'linux/amd64': DIGEST } },
  },
};
const PINNED = `registry.test/app@${DIGEST}`;
const PINNED_DB = `registry.test/db@${DIGEST}`;
const T0 = Date.parse('2026-01-01T00:00:00Z');

const COMPOSE = `
services:
  db:
    image: registry.test/db:1
    healthcheck: {test: "pg_isready", interval: 5s}
    restart: unless-stopped
    volumes: ["dbdata:/var/lib/db"]
  app:
    image: registry.test/app:1
    depends_on:
      db: {condition: service_healthy}
    restart: unless-stopped
  proxy:
    image: registry.test/app:1
    depends_on: [app]
    restart: unless-stopped
volumes: {dbdata: {}}
`;

async function desiredFrom(text: string): Promise<DesiredStack> {
  return composeStackFromSources([{ file: '/srv/memu/compose.yaml', text }], {
    variables: {},
    projectName: 'memu',
    readTextFile: async () => undefined,
  });
}

function ctx(overrides: Partial<PlanContext> = {}): PlanContext {
  return {
    now: T0,
    lock,
    platform: 'linux/amd64',
    restartHistory: {},
    backoff: DEFAULT_BACKOFF,
    allowPull: false,
    removeVolumes: false,
    ...overrides,
  };
}

/** Current state with the stack's networks and volumes in place and the given containers. */
function state(desired: DesiredStack, containers: CurrentContainer[], extra: Partial<CurrentState> = {}): CurrentState {
  return {
    containers,
    networks: Object.values(desired.networks).map((n) => ({
      id: `net-${n.key}`,
      name: n.dockerName,
      project: desired.project,
      key: n.key,
      configHash: networkBlueprint(desired.project, n).configHash,
      containerIds: containers.map((c) => c.id),
    })),
    volumes: Object.values(desired.volumes).map((v) => ({ name: v.dockerName, project: desired.project, key: v.key })),
    images: new Set([PINNED, PINNED_DB]),
    ...extra,
  };
}

/** An up-to-date container of a service, in the given state. */
function container(desired: DesiredStack, service: string, over: Partial<CurrentContainer> = {}): CurrentContainer {
  const image = desired.services[service]!.image === 'registry.test/db:1' ? PINNED_DB : PINNED;
  const blueprint = containerBlueprint(desired, desired.services[service]!, image);
  return {
    id: `id-${service}`,
    name: blueprint.name,
    service,
    configHash: blueprint.configHash,
    state: 'running',
    health: desired.services[service]!.healthcheck ? 'healthy' : 'none',
    exitCode: 0,
    oomKilled: false,
    startedAt: T0 - 3_600_000,
    networks: ['memu_default'],
    volumes: [],
    ...over,
  };
}

const kinds = (steps: Step[]) => steps.map((s) => `${s.kind}:${'service' in s ? s.service : ''}`).sort();

describe('planNextSteps: bringing a stack up', () => {
  it('creates networks and volumes first, containers only once those exist', async () => {
    const desired = await desiredFrom(COMPOSE);
    const empty: CurrentState = { containers: [], networks: [], volumes: [], images: new Set([PINNED, PINNED_DB]) };
    const first = planNextSteps(desired, empty, ctx());
    expect(kinds(first.steps)).toEqual(['createNetwork:', 'createVolume:']);
    expect(first.services.db).toMatchObject({ state: 'pending' });

    const second = planNextSteps(desired, state(desired, []), ctx());
    expect(kinds(second.steps)).toEqual(['createContainer:app', 'createContainer:db', 'createContainer:proxy']);
  });

  it('starts dependencies first and gates dependents on their condition', async () => {
    const desired = await desiredFrom(COMPOSE);
    const created = (s: string) => container(desired, s, { state: 'created', health: 'none', startedAt: undefined });
    const plan = planNextSteps(desired, state(desired, ['db', 'app', 'proxy'].map(created)), ctx());
    expect(kinds(plan.steps)).toEqual(['startContainer:db']);
    expect(plan.services.app).toMatchObject({ state: 'waiting', for: ['db'] });
    expect(plan.services.proxy).toMatchObject({ state: 'waiting', for: ['app'] });

    const dbStarting = container(desired, 'db', { health: 'starting', startedAt: T0 - 1000 });
    const waiting = planNextSteps(desired, state(desired, [dbStarting, created('app'), created('proxy')]), ctx());
    expect(waiting.steps).toEqual([{ kind: 'waitHealthy', service: 'db', containerId: 'id-db', neededBy: ['app'] }]);
    expect(waiting.services.app).toMatchObject({ state: 'waiting', reason: expect.stringContaining('db is not healthy yet') });

    const dbHealthy = container(desired, 'db');
    const go = planNextSteps(desired, state(desired, [dbHealthy, created('app'), created('proxy')]), ctx());
    expect(kinds(go.steps)).toEqual(['startContainer:app']);
  });

  it('keeps dependents of an unhealthy dependency stopped and restarts the dependency', async () => {
    const desired = await desiredFrom(COMPOSE);
    const db = container(desired, 'db', { health: 'unhealthy' });
    const app = container(desired, 'app', { state: 'created', health: 'none', startedAt: undefined });
    const plan = planNextSteps(desired, state(desired, [db, app]), ctx());
    expect(kinds(plan.steps)).toContain('restartContainer:db');
    expect(kinds(plan.steps)).not.toContain('startContainer:app');
    expect(plan.services.db).toMatchObject({ state: 'unhealthy' });
    expect(plan.services.app).toMatchObject({ state: 'waiting', reason: 'db is unhealthy' });
  });

  it('returns zero steps when everything matches', async () => {
    const desired = await desiredFrom(COMPOSE);
    const plan = planNextSteps(desired, state(desired, ['db', 'app', 'proxy'].map((s) => container(desired, s))), ctx());
    expect(plan.steps).toEqual([]);
    expect(plan.services).toMatchObject({ db: { state: 'healthy' }, app: { state: 'running' }, proxy: { state: 'running' } });
  });

  it('waits for a one-shot dependency to complete successfully', async () => {
    const desired = await desiredFrom(`
services:
  migrate: {image: registry.test/app:1}
  app:
    image: registry.test/app:1
    depends_on: {migrate: {condition: service_completed_successfully}}
`);
    const app = container(desired, 'app', { state: 'created', startedAt: undefined });
    const failed = container(desired, 'migrate', { state: 'exited', exitCode: 1 });
    const blocked = planNextSteps(desired, state(desired, [failed, app]), ctx());
    expect(blocked.steps).toEqual([]);
    expect(blocked.services.migrate).toEqual({ state: 'exited', exitCode: 1 });
    expect(blocked.services.app).toMatchObject({ state: 'waiting', reason: 'migrate exited with code 1' });
    const done = container(desired, 'migrate', { state: 'exited', exitCode: 0 });
    expect(kinds(planNextSteps(desired, state(desired, [done, app]), ctx()).steps)).toEqual(['startContainer:app']);
  });
});

describe('planNextSteps: changes and clean-up', () => {
  it('recreates only the changed service: stop, then remove, then create', async () => {
    const desired = await desiredFrom(COMPOSE);
    const changed = await desiredFrom(COMPOSE.replace('depends_on: [app]', 'depends_on: [app]\n    environment: {MODE: new}'));
    const current = ['db', 'app', 'proxy'].map((s) => container(desired, s));
    const stop = planNextSteps(changed, state(changed, current), ctx());
    expect(stop.steps).toEqual([
      { kind: 'stopContainer', service: 'proxy', containerId: 'id-proxy', timeoutS: 10, reason: 'configuration changed' },
    ]);
    const stopped = current.map((c) => (c.service === 'proxy' ? { ...c, state: 'exited' as const } : c));
    expect(kinds(planNextSteps(changed, state(changed, stopped), ctx()).steps)).toEqual(['removeContainer:proxy']);
    const removed = current.filter((c) => c.service !== 'proxy');
    expect(kinds(planNextSteps(changed, state(changed, removed), ctx()).steps)).toEqual(['createContainer:proxy']);
  });

  it('removes containers and empty networks the stack no longer names; volumes only when asked', async () => {
    const desired = await desiredFrom(COMPOSE);
    const current = state(desired, ['db', 'app', 'proxy'].map((s) => container(desired, s)));
    current.containers.push({ ...container(desired, 'app'), id: 'id-old', service: 'retired', state: 'exited' });
    current.networks.push(
      { id: 'net-old', name: 'memu_old', project: 'memu', key: 'old', containerIds: [] },
      { id: 'net-busy', name: 'memu_busy', project: 'memu', key: 'busy', containerIds: ['someone'] },
      { id: 'net-other', name: 'other_default', project: 'other', key: 'default', containerIds: [] },
    );
    current.volumes.push({ name: 'memu_olddata', project: 'memu', key: 'olddata' }, { name: 'foreign', key: undefined });
    const plan = planNextSteps(desired, current, ctx());
    expect(plan.steps).toEqual([
      { kind: 'removeContainer', service: 'retired', containerId: 'id-old', reason: 'no longer in the stack' },
      { kind: 'removeNetwork', networkId: 'net-old', name: 'memu_old', reason: 'no longer in the stack' },
    ]);
    const withVolumes = planNextSteps(desired, current, ctx({ removeVolumes: true }));
    expect(withVolumes.steps).toContainEqual({ kind: 'removeVolume', name: 'memu_olddata', reason: 'no longer in the stack' });
    expect(withVolumes.steps.filter((s) => s.kind === 'removeVolume')).toHaveLength(1);
  });

  it('reports a missing image by service and image, or pulls it when allowed', async () => {
    const desired = await desiredFrom(COMPOSE);
    const current = state(desired, [], { images: new Set([PINNED_DB]) });
    const plan = planNextSteps(desired, current, ctx());
    expect(plan.services.app).toEqual({
      state: 'error',
      reason: `service app: image registry.test/app:1 (${PINNED}) is not on this device; load it (the image preload) or allow pulling`,
    });
    expect(kinds(plan.steps)).toEqual(['createContainer:db']);
    expect(kinds(planNextSteps(desired, current, ctx({ allowPull: true })).steps)).toEqual([
      'createContainer:db',
      'pullImage:app',
      'pullImage:proxy',
    ]);
    const unlocked = await desiredFrom('services:\n  x: {image: "registry.test/unlocked:1"}\n');
    expect(planNextSteps(unlocked, state(unlocked, []), ctx()).services.x).toMatchObject({
      state: 'error',
      reason: expect.stringContaining('registry.test/unlocked:1 is not in the image lock'),
    });
  });
});

describe('planNextSteps: services held stopped (a whole-box restore)', () => {
  const hold = { reason: 'restoring the family backup', services: ['db'], roles: ['app'] };
  const LABELLED = COMPOSE.replace('    depends_on:\n      db: {condition: service_healthy}', '    labels: {org.memu.role: app}\n    depends_on:\n      db: {condition: service_healthy}');

  it('stops held services, by name or by role, and leaves the others running', async () => {
    const desired = await desiredFrom(LABELLED);
    const plan = planNextSteps(desired, state(desired, ['db', 'app', 'proxy'].map((s) => container(desired, s))), ctx({ hold }));
    expect(kinds(plan.steps)).toEqual(['stopContainer:app', 'stopContainer:db']);
    expect(plan.services.db).toEqual({ state: 'pending', reason: 'held stopped: restoring the family backup' });
    expect(plan.services.app).toEqual({ state: 'pending', reason: 'held stopped: restoring the family backup' });
    expect(plan.services.proxy).toMatchObject({ state: 'running' });
  });

  it('neither creates nor starts a held service, and starts it once the hold is lifted', async () => {
    const desired = await desiredFrom(LABELLED);
    const stopped = (s: string) => container(desired, s, { state: 'exited', health: 'none', exitCode: 0 });
    const heldPlan = planNextSteps(desired, state(desired, [stopped('db')]), ctx({ hold }));
    expect(kinds(heldPlan.steps)).toEqual(['createContainer:proxy']);
    const onlyApps = planNextSteps(desired, state(desired, [stopped('db')]), ctx({ hold: { ...hold, services: [] } }));
    expect(kinds(onlyApps.steps)).toEqual(['createContainer:proxy', 'startContainer:db']);
    expect(onlyApps.services.app).toMatchObject({ state: 'pending', reason: 'held stopped: restoring the family backup' });
    const lifted = planNextSteps(desired, state(desired, [container(desired, 'db')]), ctx());
    expect(kinds(lifted.steps)).toEqual(['createContainer:app', 'createContainer:proxy']);
  });
});

describe('restart backoff with an injected clock', () => {
  it('says when the kernel killed a service for memory, in its restart, its backoff and its status', async () => {
    const desired = await desiredFrom('services:\n  photos: {image: registry.test/app:1, restart: always}\n');
    const oom = container(desired, 'photos', { state: 'exited', exitCode: 137, oomKilled: true, startedAt: T0 - 500, finishedAt: T0 - 400 });
    const restart = await planNextSteps(desired, state(desired, [oom]), ctx({ now: T0 }));
    expect(restart.steps).toEqual([{ kind: 'startContainer', service: 'photos', containerId: 'id-photos', reason: 'out of memory' }]);
    expect(restart.services.photos).toEqual({ state: 'pending', reason: 'being restarted after running out of memory (exit code 137)' });
    const waiting = await planNextSteps(desired, state(desired, [oom]), ctx({ now: T0 + 1000, restartHistory: recordRestart({}, 'photos', T0) }));
    expect(waiting.steps).toEqual([{ kind: 'backoff', service: 'photos', retryAt: T0 + 10_000, reason: 'ran out of memory (exit code 137)' }]);
    const status = waiting.services.photos!;
    expect(status).toEqual({ state: 'backing-off', exitCode: 137, outOfMemory: true, restarts: 1, nextRetryAt: T0 + 10_000 });
  });

  async function crashed(history: RestartHistory, now: number) {
    const desired = await desiredFrom('services:\n  flaky: {image: registry.test/app:1, restart: always}\n');
    const c = container(desired, 'flaky', { state: 'exited', exitCode: 3, startedAt: now - 500, finishedAt: now - 400 });
    return planNextSteps(desired, state(desired, [c]), ctx({ now, restartHistory: history }));
  }

  it('restarts a first crash at once, then waits 10 s, 20 s, 40 s … capped at 5 min', async () => {
    expect(kinds((await crashed({}, T0)).steps)).toEqual(['startContainer:flaky']);
    let history: RestartHistory = recordRestart({}, 'flaky', T0);
    const early = await crashed(history, T0 + 9_999);
    expect(early.steps).toEqual([{ kind: 'backoff', service: 'flaky', retryAt: T0 + 10_000, reason: 'exited with code 3' }]);
    expect(early.services.flaky).toEqual({ state: 'backing-off', exitCode: 3, restarts: 1, nextRetryAt: T0 + 10_000 });
    expect(kinds((await crashed(history, T0 + 10_000)).steps)).toEqual(['startContainer:flaky']);

    history = recordRestart(recordRestart(history, 'flaky', T0 + 10_000), 'flaky', T0 + 30_000);
    expect((await crashed(history, T0 + 31_000)).services.flaky).toMatchObject({ nextRetryAt: T0 + 30_000 + 40_000 });
    let t = T0;
    let long: RestartHistory = {};
    for (let i = 0; i < 8; i++) long = recordRestart(long, 'flaky', (t += 1000));
    expect((await crashed(long, t + 1)).services.flaky).toMatchObject({ nextRetryAt: t + 2 * 60_000 });
  });

  it('trips the loop breaker after 10 restarts in 30 minutes and reports it', async () => {
    let history: RestartHistory = {};
    for (let i = 0; i < 10; i++) history = recordRestart(history, 'flaky', T0 + i * 1000);
    const plan = await crashed(history, T0 + 10 * 60_000);
    const retryAt = T0 + 30 * 60_000; // the oldest restart leaves the window
    expect(plan.steps).toContainEqual({ kind: 'reportCrashLoop', service: 'flaky', restartsInWindow: 10, retryAt });
    expect(plan.services.flaky).toEqual({ state: 'crash-looping', exitCode: 3, restarts: 10, nextRetryAt: retryAt });
  });

  it('calls a service crash-looping only by that rule: 9 restarts in the window is backing off', async () => {
    const restarts = (n: number, from: number, every: number) => {
      let history: RestartHistory = {};
      for (let i = 0; i < n; i++) history = recordRestart(history, 'flaky', from + i * every);
      return history;
    };
    // Nine restarts a minute apart: still backing off (capped at 2 min after the last one).
    const nine = await crashed(restarts(9, T0, 60_000), T0 + 9 * 60_000);
    expect(nine.services.flaky).toEqual({ state: 'backing-off', exitCode: 3, restarts: 9, nextRetryAt: T0 + 8 * 60_000 + 2 * 60_000 });
    expect(kinds(nine.steps)).toEqual(['backoff:flaky']);
    // Ten restarts spread over more than 30 minutes: the oldest has left the window, so no loop breaker.
    const spread = restarts(10, T0, 210_000);
    const later = T0 + 32 * 60_000;
    const pruned = pruneRestartHistory(spread, [], later, DEFAULT_BACKOFF);
    expect((await crashed(pruned, later)).services.flaky).toMatchObject({ state: 'backing-off', restarts: 9 });
  });

  it('forgets the streak after a stable run and old restarts after the window', () => {
    const history = recordRestart(recordRestart({}, 'svc', T0), 'svc', T0 + 10_000);
    const running = (startedAt: number): CurrentContainer => ({
      id: 'x', name: 'x', service: 'svc', state: 'running', health: 'none', exitCode: 0, oomKilled: false, startedAt, networks: [], volumes: [],
    });
    expect(pruneRestartHistory(history, [running(T0 + 10_000)], T0 + 30_000, DEFAULT_BACKOFF).svc).toEqual({
      restarts: [T0, T0 + 10_000],
      streak: 2,
    });
    expect(pruneRestartHistory(history, [running(T0 + 10_000)], T0 + 80_000, DEFAULT_BACKOFF).svc).toEqual({
      restarts: [T0, T0 + 10_000],
      streak: 0,
    });
    expect(pruneRestartHistory(history, [], T0 + 31 * 60_000, DEFAULT_BACKOFF).svc).toBeUndefined();
  });

  it('applies the same backoff to restarts for unhealthy containers', async () => {
    const desired = await desiredFrom(COMPOSE);
    const db = container(desired, 'db', { health: 'unhealthy', startedAt: T0 - 2000 });
    const history = recordRestart({}, 'db', T0 - 2000);
    const plan = planNextSteps(desired, state(desired, [db]), ctx({ restartHistory: history }));
    expect(plan.steps).toContainEqual({ kind: 'backoff', service: 'db', retryAt: T0 + 8000, reason: 'unhealthy' });
    expect(plan.services.db).toMatchObject({ state: 'unhealthy', nextRetryAt: T0 + 8000 });
  });
});
