/**
 * The loop's scheduling on its own: the reconcile it drives is a function here, so the
 * order of runs and exclusive work can be observed exactly. The same guarantees against
 * the real dockerd: test/integration/agent/stack/reconciler.test.ts.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createReconcileLoop, type ReconcileLoopOptions } from '../../../../agent/stack/reconcile-loop.ts';
import type { ReconcileResult } from '../../../../agent/stack/reconcile-run.ts';

const log = pino({ level: 'silent' });

function result(): ReconcileResult {
  return { converged: true, timedOut: false, iterations: 1, executed: [], waiting: [], services: {}, startedAt: Date.now(), durationMs: 0 };
}

/** Records every reconcile the loop starts; each one finishes when the test says so (or at once). */
function recordingReconciles(opts: { holdEach?: boolean } = {}) {
  const runs: { windDown: () => boolean; finish: () => void; finished: boolean }[] = [];
  let onChange: () => void = () => {};
  const waiters: (() => void)[] = [];
  const options: ReconcileLoopOptions = {
    reconcile: (_limit, windDown) =>
      new Promise((resolve) => {
        const run = { windDown, finished: false, finish: () => ((run.finished = true), resolve(result())) };
        runs.push(run);
        waiters.splice(0).forEach((w) => w());
        if (!opts.holdEach) run.finish();
      }),
    watch: (cb) => {
      onChange = cb;
      return { close: () => (onChange = () => {}) };
    },
    intervalMs: 60 * 60_000,
    debounceMs: 0,
    timeLimitMs: 60_000,
    now: Date.now,
    log,
  };
  return {
    options,
    runs,
    change: () => onChange(),
    /** Resolves once the loop has started `count` reconciles in all. */
    async started(count: number) {
      while (runs.length < count) await new Promise<void>((r) => waiters.push(r));
    },
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

describe('reconcile loop: exclusive work', () => {
  it('waits for the reconcile in flight, which is asked to wind down, before the exclusive work starts', async () => {
    const r = recordingReconciles({ holdEach: true });
    const loop = createReconcileLoop(r.options);
    loop.start();
    await r.started(1);
    const inFlight = r.runs[0]!;
    expect(inFlight.windDown()).toBe(false);
    const order: string[] = [];
    const exclusive = loop.runExclusive('backup', async () => {
      order.push(`exclusive starts; run finished: ${inFlight.finished}`);
      expect(loop.state()).toBe('paused: backup');
    });
    await settle();
    expect(order).toEqual([]);
    expect(inFlight.windDown()).toBe(true);
    expect(loop.state()).toBe('running');
    inFlight.finish();
    await exclusive;
    expect(order).toEqual(['exclusive starts; run finished: true']);
    await loop.stop();
  });

  it('starts no reconcile while held, whatever changes, and resumes with exactly one', async () => {
    const r = recordingReconciles();
    const loop = createReconcileLoop(r.options);
    loop.start();
    await r.started(1);
    await settle();
    await loop.runExclusive('os update', async () => {
      for (let i = 0; i < 5; i++) {
        r.change();
        await settle();
      }
      expect(r.runs).toHaveLength(1);
    });
    await r.started(2);
    await settle();
    expect(r.runs).toHaveLength(2);
    expect(loop.state()).toBe('running');
    await loop.stop();
  });

  it('resumes also when the exclusive work throws, and passes the error on', async () => {
    const r = recordingReconciles();
    const loop = createReconcileLoop(r.options);
    loop.start();
    await r.started(1);
    await expect(loop.runExclusive('backup', async () => Promise.reject(new Error('disk full')))).rejects.toThrow('disk full');
    await r.started(2);
    expect(loop.state()).toBe('running');
    await loop.stop();
  });

  it('holds reconciles asked for directly (the bring-up step) until the exclusive work is done', async () => {
    const r = recordingReconciles();
    const loop = createReconcileLoop(r.options);
    let release!: () => void;
    const exclusive = loop.runExclusive('backup', () => new Promise<void>((res) => (release = res)));
    await settle();
    const direct = loop.reconcileOnce();
    await settle();
    expect(r.runs).toHaveLength(0);
    release();
    await exclusive;
    await direct;
    expect(r.runs).toHaveLength(1);
    // The loop was never started: nothing resumes it.
    await settle();
    expect(r.runs).toHaveLength(1);
    expect(loop.state()).toBe('not started');
  });

  it('runs two exclusive holders one after the other, and resumes once after both', async () => {
    const r = recordingReconciles();
    const loop = createReconcileLoop(r.options);
    loop.start();
    await r.started(1);
    await settle();
    const seen: string[] = [];
    let releaseFirst!: () => void;
    const first = loop.runExclusive('update', async () => {
      seen.push(loop.state());
      await new Promise<void>((res) => (releaseFirst = res));
    });
    const second = loop.runExclusive('backup', async () => {
      seen.push(loop.state());
    });
    await settle();
    releaseFirst();
    await Promise.all([first, second]);
    expect(seen).toEqual(['paused: update', 'paused: backup']);
    expect(r.runs).toHaveLength(1);
    await r.started(2);
    await settle();
    expect(r.runs).toHaveLength(2);
    await loop.stop();
  });
});
