import { describe, expect, it } from 'vitest';
import { INITIAL_UPDATE_STATE, nextUpdateState, type UpdateEffect, type UpdateEvent, type UpdateState } from '../../../../agent/updates/update-state.ts';

const release = { version: '1.4.0', manifestSha256: 'f'.repeat(64) };
const t0 = new Date('2026-12-05T12:00:00Z');
const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

/** Feeds events in order, failing on any the reducer ignores; returns the last transition and every effect. */
function run(events: UpdateEvent[], from: UpdateState = INITIAL_UPDATE_STATE) {
  let state = from;
  const effects: UpdateEffect[] = [];
  for (const e of events) {
    const t = nextUpdateState(state, e);
    expect(t.ignored, `${e.type} in ${state.phase}`).toBeUndefined();
    state = t.state;
    effects.push(...t.effects);
  }
  return { state, effects };
}

const start: UpdateEvent = { type: 'install-started', release, fromVersion: '1.3.0', currentSlot: 'a', bytesTotal: 1000, now: t0 };
const toTrial: UpdateEvent[] = [start, { type: 'download-progress', bytesDone: 400 }, { type: 'install-finished' }, { type: 'trial-armed' }, { type: 'booted', slot: 'b', bootId: 'boot-1', now: at(3) }];

describe('update slot state machine', () => {
  it('installs into the idle slot, tries it, and commits once the stack is healthy', () => {
    const first = run([start, { type: 'download-progress', bytesDone: 400 }]);
    expect(first.state).toMatchObject({ phase: 'downloading', fromSlot: 'a', targetSlot: 'b', bytesDone: 400, bytesTotal: 1000 });
    const installed = run([{ type: 'install-finished' }], first.state);
    expect(installed.state).toMatchObject({ phase: 'installed', trialArmed: false });
    expect(installed.effects).toEqual([{ type: 'arm-trial-and-reboot', slot: 'b' }]);
    const trial = run(toTrial);
    expect(trial.state).toMatchObject({ phase: 'trial-booting', targetSlot: 'b', bootId: 'boot-1', healthyBy: at(18).toISOString() });
    const done = run([{ type: 'health', healthy: false, detail: 'synapse starting', now: at(5) }, { type: 'health', healthy: true, detail: 'ok', now: at(9) }], trial.state);
    expect(done.state).toEqual({ phase: 'committed', release, slot: 'b', at: at(9).toISOString() });
    expect(done.effects).toEqual([{ type: 'mark-good' }]);
  });

  it('goes back to the old slot when the stack is not healthy by the bound, and restores the dump there', () => {
    const trial = run(toTrial).state;
    const late = run([{ type: 'health', healthy: false, detail: 'immich unhealthy', now: at(18) }], trial);
    expect(late.state).toMatchObject({ phase: 'rolling-back', reason: 'unhealthy', fromSlot: 'a' });
    expect(late.effects).toEqual([{ type: 'reboot-into', slot: 'a' }]);
    const back = run([{ type: 'booted', slot: 'a', bootId: 'boot-2', now: at(20) }], late.state);
    expect(back.state).toMatchObject({ phase: 'rolled-back', slot: 'a', reason: 'unhealthy', release });
    expect(back.state.phase === 'rolled-back' && back.state.detail).toContain('immich unhealthy');
    expect(back.effects).toEqual([{ type: 'restore-database-dump', takenBefore: '1.4.0' }]);
  });

  it('a trial the loader gave up on (the new agent never came up) is rolled back with the reason', () => {
    const armed = run([start, { type: 'install-finished' }, { type: 'trial-armed' }]).state;
    const fellBack = run([{ type: 'booted', slot: 'a', bootId: 'boot-2', now: at(6) }], armed);
    expect(fellBack.state).toMatchObject({ phase: 'rolled-back', slot: 'a', reason: 'trial-boot-failed' });
    // The same when the new system stopped mid-trial and the loader went back.
    const crashed = run([{ type: 'booted', slot: 'a', bootId: 'boot-3', now: at(8) }], run(toTrial).state);
    expect(crashed.state).toMatchObject({ phase: 'rolled-back', reason: 'trial-boot-failed' });
    expect(crashed.effects).toEqual([{ type: 'restore-database-dump', takenBefore: '1.4.0' }]);
  });

  it('a reset during the trial that boots the trial slot again starts a new bound; the same boot reported twice changes nothing', () => {
    const trial = run(toTrial).state;
    expect(nextUpdateState(trial, { type: 'booted', slot: 'b', bootId: 'boot-1', now: at(4) })).toEqual({ state: trial, effects: [] });
    const again = run([{ type: 'booted', slot: 'b', bootId: 'boot-9', now: at(10) }], trial);
    expect(again.state).toMatchObject({ phase: 'trial-booting', bootId: 'boot-9', healthyBy: at(25).toISOString() });
  });

  it('a reset while writing leaves the running slot in use and says why; a failed write says what failed', () => {
    const downloading = run([start]).state;
    const reset = run([{ type: 'booted', slot: 'a', bootId: 'boot-2', now: at(1) }], downloading);
    expect(reset.state).toMatchObject({ phase: 'idle', last: { outcome: 'interrupted', version: '1.4.0' } });
    const failed = run([{ type: 'install-failed', reason: 'bundle payload is corrupted', now: at(2) }], downloading);
    expect(failed.state).toEqual({ phase: 'idle', last: { outcome: 'install-failed', version: '1.4.0', reason: 'bundle payload is corrupted', at: at(2).toISOString() } });
  });

  it('a reset after writing but before the trial was armed arms it again instead of rolling back', () => {
    const installed = run([start, { type: 'install-finished' }]).state;
    const t = run([{ type: 'booted', slot: 'a', bootId: 'boot-2', now: at(2) }], installed);
    expect(t.state).toEqual(installed);
    expect(t.effects).toEqual([{ type: 'arm-trial-and-reboot', slot: 'b' }]);
  });

  it('refuses a second install while one is under way, and allows one after a commit or a rollback', () => {
    for (const busy of [run([start]).state, run([start, { type: 'install-finished' }]).state, run(toTrial).state]) {
      expect(nextUpdateState(busy, start).ignored).toMatch(/already under way/);
    }
    const committed = run([{ type: 'health', healthy: true, detail: 'ok', now: at(4) }], run(toTrial).state).state;
    expect(run([{ ...start, currentSlot: 'b' }], committed).state).toMatchObject({ phase: 'downloading', fromSlot: 'b', targetSlot: 'a' });
  });

  it('ignores health reports and boots when no update is under way', () => {
    expect(nextUpdateState(INITIAL_UPDATE_STATE, { type: 'health', healthy: false, detail: 'x', now: t0 }).ignored).toMatch(/no trial is running/);
    expect(nextUpdateState(INITIAL_UPDATE_STATE, { type: 'booted', slot: 'a', bootId: 'x', now: t0 }).ignored).toMatch(/no update is under way/);
  });
});
