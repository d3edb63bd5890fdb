import { describe, expect, it } from 'vitest';
import {
  generateOneTimePassword,
  initialAccountState,
  next,
  ONE_TIME_PASSWORD_PATTERN,
  usernameProblem,
  type AccountEvent,
  type AccountState,
  type AccountStatus,
} from '../../../../agent/accounts/member-accounts.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:01:00.000Z';
const refused = { code: 'exists', message: 'taken by someone else', retriable: false, outcomeUnknown: false };
const answered = { code: 'http-400', message: 'Synapse said no', retriable: true, outcomeUnknown: false };
const lost = { code: 'timeout', message: 'no answer within 15 s', retriable: true, outcomeUnknown: true };
const created = { type: 'succeeded', remoteId: '@anna:hub', login: '@anna:hub', passwordIssued: true } as const;

/** Applies events in turn, each of which must be accepted. */
function run(state: AccountState, ...events: AccountEvent[]): AccountState {
  for (const event of events) {
    const step = next(state, event, T1);
    expect(step.refused, `${state.status} + ${event.type}`).toBeUndefined();
    state = step.state;
  }
  return state;
}

describe('creating an account', () => {
  it('records the attempt before the call and the account after it', () => {
    const start = next(initialAccountState(T0), { type: 'start' }, T1);
    expect(start.state).toMatchObject({ status: 'creating', operation: 'create', attempts: 1, mayExist: false, updatedAt: T1 });
    expect(start.call).toEqual({ kind: 'create', adoptIfExists: false });

    const done = next(start.state, created, T1);
    expect(done.call).toBeUndefined();
    expect(done.state).toMatchObject({ status: 'created', remoteId: '@anna:hub', login: '@anna:hub', passwordIssuedAt: T1, passwordsIssued: 1 });
    expect(done.state.operation).toBeUndefined();
  });

  it('after a refusal retries without adopting: the service answered, so nothing of ours can be there', () => {
    const failed = run(initialAccountState(T0), { type: 'start' }, { type: 'failed', error: answered });
    expect(failed).toMatchObject({ status: 'failed', operation: 'create', mayExist: false, lastError: { ...answered, at: T1 } });
    expect(next(failed, { type: 'retry' }, T1)).toMatchObject({ state: { status: 'creating', attempts: 2 }, call: { kind: 'create', adoptIfExists: false } });
  });

  it('after an unknown outcome retries adopting an existing account, and keeps that knowledge', () => {
    const failed = run(initialAccountState(T0), { type: 'start' }, { type: 'failed', error: lost });
    expect(failed.mayExist).toBe(true);
    const again = run(failed, { type: 'retry' }, { type: 'failed', error: answered });
    expect(again.mayExist).toBe(true); // the first request may still have created it
    expect(next(again, { type: 'retry' }, T1).call).toEqual({ kind: 'create', adoptIfExists: true });
    expect(run(again, { type: 'retry' }, created)).toMatchObject({ status: 'created', mayExist: false, attempts: 3 });
  });

  it('found "creating" on load (the agent stopped mid-call) adopts on retry', () => {
    const crashed = run(initialAccountState(T0), { type: 'start' });
    const step = next(crashed, { type: 'retry' }, T1);
    expect(step.call).toEqual({ kind: 'create', adoptIfExists: true });
    expect(step.state).toMatchObject({ status: 'creating', mayExist: true, attempts: 2 });
  });

  it('does not retry a failure that cannot succeed, and says why', () => {
    const failed = run(initialAccountState(T0), { type: 'start' }, { type: 'failed', error: refused });
    const step = next(failed, { type: 'retry' }, T1);
    expect(step.refused).toBe('taken by someone else');
    expect(step.state).toBe(failed);
    expect(step.call).toBeUndefined();
  });

  it('issues no call for a created account', () => {
    const done = run(initialAccountState(T0), { type: 'start' }, created);
    for (const type of ['start', 'retry'] as const) expect(next(done, { type }, T1)).toMatchObject({ state: done, refused: expect.any(String) });
  });
});

describe('resetting a password', () => {
  const done = run(initialAccountState(T0), { type: 'start' }, created);

  it('sets a new one on the recorded account and counts it', () => {
    const step = next(done, { type: 'reset' }, T1);
    expect(step.call).toEqual({ kind: 'set-password', remoteId: '@anna:hub' });
    expect(step.state).toMatchObject({ status: 'created', operation: 'reset' });
    expect(next(step.state, { type: 'succeeded', passwordIssued: true }, T1).state).toMatchObject({ status: 'created', passwordsIssued: 2 });
  });

  it('that fails leaves the account created, with the error', () => {
    const after = run(done, { type: 'reset' }, { type: 'failed', error: lost });
    expect(after).toMatchObject({ status: 'created', passwordsIssued: 1, lastError: { code: 'timeout' } });
    expect(after.operation).toBeUndefined();
    expect(run(after, { type: 'reset' }, { type: 'succeeded', passwordIssued: true }).lastError).toBeUndefined();
  });

  it('is refused before the account exists', () => {
    expect(next(initialAccountState(T0), { type: 'reset' }, T1).refused).toBeDefined();
  });
});

describe('removing an account', () => {
  it('removes a created account remotely, then records it removed', () => {
    const done = run(initialAccountState(T0), { type: 'start' }, created);
    const step = next(done, { type: 'remove' }, T1);
    expect(step).toMatchObject({ state: { status: 'removing', operation: 'remove' }, call: { kind: 'remove', remoteId: '@anna:hub' } });
    expect(next(step.state, { type: 'removed' }, T1).state.status).toBe('removed');
  });

  it('needs no call when nothing of ours can be on the service', () => {
    expect(next(initialAccountState(T0), { type: 'remove' }, T1)).toMatchObject({ state: { status: 'removed' }, call: undefined });
    const notOurs = run(initialAccountState(T0), { type: 'start' }, { type: 'failed', error: refused });
    expect(next(notOurs, { type: 'remove' }, T1)).toMatchObject({ state: { status: 'removed' }, call: undefined });
  });

  it('looks for an account that may exist although no answer said so', () => {
    const uncertain = run(initialAccountState(T0), { type: 'start' }, { type: 'failed', error: lost });
    expect(next(uncertain, { type: 'remove' }, T1).call).toEqual({ kind: 'remove', remoteId: undefined });
    const crashed = run(initialAccountState(T0), { type: 'start' });
    expect(next(crashed, { type: 'remove' }, T1)).toMatchObject({ state: { status: 'removing' }, call: { kind: 'remove' } });
  });

  it('that fails is retried as a removal, not a create', () => {
    const failed = run(initialAccountState(T0), { type: 'start' }, created, { type: 'remove' }, { type: 'failed', error: lost });
    expect(failed).toMatchObject({ status: 'failed', operation: 'remove' });
    expect(next(failed, { type: 'retry' }, T1).call).toEqual({ kind: 'remove', remoteId: '@anna:hub' });
  });

  it('is final: a removed account takes no event', () => {
    const removed = run(initialAccountState(T0), { type: 'remove' });
    for (const type of ['start', 'retry', 'reset', 'remove'] as const) expect(next(removed, { type }, T1).refused).toMatch(/removed/);
  });
});

describe('the state machine as a whole', () => {
  const statuses: AccountStatus[] = ['pending', 'creating', 'created', 'failed', 'removing', 'removed'];
  const events: AccountEvent[] = [
    { type: 'start' },
    { type: 'retry' },
    { type: 'reset' },
    { type: 'remove' },
    created,
    { type: 'succeeded', passwordIssued: false },
    { type: 'failed', error: lost },
    { type: 'removed' },
  ];

  it('answers every event in every state without throwing, and a refusal changes nothing', () => {
    for (const status of statuses) {
      for (const operation of [undefined, 'create', 'reset', 'remove'] as const) {
        const state: AccountState = { ...initialAccountState(T0), status, operation, remoteId: '@anna:hub' };
        for (const event of events) {
          const step = next(state, event, T1);
          if (step.refused) expect(step.state).toBe(state);
          else expect(statuses).toContain(step.state.status);
          if (step.call) expect(['creating', 'created', 'removing']).toContain(step.state.status);
        }
      }
    }
  });

  it('records no password anywhere: only when and how often one was issued', () => {
    const state = run(initialAccountState(T0), { type: 'start' }, created, { type: 'reset' }, { type: 'succeeded', passwordIssued: true });
    expect(Object.keys(state).sort()).toEqual(['attempts', 'login', 'mayExist', 'passwordIssuedAt', 'passwordsIssued', 'remoteId', 'status', 'updatedAt']);
    expect(JSON.parse(JSON.stringify(state))).toStrictEqual(state); // plain data, for any store
  });
});

describe('one-time passwords', () => {
  it('are 4 groups of 5 Crockford base32 symbols, different every time', () => {
    const passwords = new Set(Array.from({ length: 2000 }, generateOneTimePassword));
    expect(passwords.size).toBe(2000);
    for (const p of passwords) expect(p).toMatch(ONE_TIME_PASSWORD_PATTERN);
  });

  it('use all 32 symbols and never I, L, O or U', () => {
    const symbols = new Set(Array.from({ length: 500 }, generateOneTimePassword).join('').replace(/-/g, ''));
    expect(symbols.size).toBe(32);
    for (const c of 'ILOU') expect(symbols.has(c)).toBe(false);
  });
});

describe('member usernames', () => {
  it('accept what a family types and both services take', () => {
    for (const ok of ['anna', 'ben.k', 'oma_2', 'z', 'a-b-c', '3kids', 'x'.repeat(32)]) expect(usernameProblem(ok), ok).toBeUndefined();
  });

  it('refuse what Synapse or Immich would refuse, or what reads badly in an address', () => {
    for (const bad of ['', 'Anna', 'anna!', '_anna', '.anna', 'anna.', 'an..na', '1234', 'anna/b', 'anna+x', 'åsa', 'x'.repeat(33)]) {
      expect(usernameProblem(bad), bad).toBeDefined();
    }
  });

  it("keep the device's own admin names", () => {
    expect(usernameProblem('memu-admin')).toMatch(/kept/);
    expect(usernameProblem('memu-admin-3f2a1b')).toMatch(/kept/);
    expect(usernameProblem('memu')).toBeUndefined();
  });
});
