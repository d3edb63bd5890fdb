import { describe, expect, it } from 'vitest';
import { ServiceRestarts, type RestartJob } from '../../../../agent/dashboard/service-restarts.ts';

function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('service restarts in the background', () => {
  it('runs one restart per service at a time, and reports how each ended', async () => {
    let t = 0;
    const asked: string[] = [];
    const pending = new Map<string, ReturnType<typeof deferred>>();
    const finished: RestartJob[] = [];
    const restarts = new ServiceRestarts(
      (service) => {
        asked.push(service);
        const d = deferred();
        pending.set(service, d);
        return d.promise;
      },
      (job) => finished.push({ ...job }),
      () => t,
    );
    expect(restarts.start('synapse', 'mum')).toBe(true);
    expect(restarts.start('synapse', 'mum')).toBe(false);
    expect(restarts.start('immich_server', 'dad')).toBe(true);
    expect(asked).toEqual(['synapse', 'immich_server']);
    expect(restarts.recent().map((j) => j.state)).toEqual(['running', 'running']);

    t = 1_000;
    pending.get('synapse')!.resolve();
    pending.get('immich_server')!.reject(new Error('no container'));
    await restarts.settled();
    expect(finished).toEqual([
      { service: 'synapse', actor: 'mum', state: 'done', startedAt: 0, finishedAt: 1_000 },
      { service: 'immich_server', actor: 'dad', state: 'failed', startedAt: 0, finishedAt: 1_000, error: 'no container' },
    ]);
    expect(restarts.start('synapse', 'mum')).toBe(true); // finished: may run again
  });

  it('shows finished restarts for five minutes', async () => {
    let t = 0;
    const restarts = new ServiceRestarts(async () => {}, () => {}, () => t);
    restarts.start('synapse', 'mum');
    await restarts.settled();
    t = 5 * 60_000;
    expect(restarts.recent()).toHaveLength(1);
    t = 5 * 60_000 + 1;
    expect(restarts.recent()).toEqual([]);
  });
});
