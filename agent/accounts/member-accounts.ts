import { randomBytes } from 'node:crypto';

/**
 * One family member's account on one service (Synapse or Immich), as a pure state
 * machine: `next(state, event, at)` returns the new state and, when there is one, the
 * remote call to make. The caller records the returned state BEFORE making that call and
 * the state after its outcome AFTER it (accounts-service.ts does exactly that and is the
 * only caller), so a crash or a lost answer at any point leaves a record that says what
 * may have happened:
 *
 *   pending ──start──▶ creating ──succeeded──▶ created ──remove──▶ removing ──removed──▶ removed
 *                         │  ▲                   │  ▲                 │
 *                   failed│  │retry        reset │  │succeeded/failed │failed
 *                         ▼  │                   ▼  │ (stays created) ▼
 *                         failed ◀────────────────────────────────── failed (operation "remove")
 *
 * "Already exists" on create: the service already has an account by this member's name.
 * If a create request of ours may have reached the service without our learning the
 * outcome (a timeout, a lost connection, a 5xx, or the agent stopped while `creating` was
 * recorded), that account is taken to be ours and ADOPTED: a new one-time password is set
 * on it and it is recorded as created, so a retry never makes a second account. Otherwise
 * it belongs to somebody else and the create FAILS, not retriable, saying so: handing a
 * stranger's (or a previous installation's) account to a family member would be wrong.
 *
 * The one-time password never enters the state: it is made by the caller for the remote
 * call, handed back once, and the state records only when one was issued.
 */
export type AccountService = 'synapse' | 'immich';
export const ACCOUNT_SERVICES: readonly AccountService[] = ['synapse', 'immich'];

export type AccountStatus = 'pending' | 'creating' | 'created' | 'failed' | 'removing' | 'removed';
export type AccountOperation = 'create' | 'reset' | 'remove';

export interface AccountError {
  message: string;
  /** A stable word for the kind of failure: exists, invalid-username, not-reusable, timeout, unreachable, http-500, … */
  code: string;
  retriable: boolean;
  /** The request may have taken effect on the service although no answer said so. */
  outcomeUnknown: boolean;
  /** When it happened (ISO 8601). */
  at: string;
}

export interface AccountState {
  status: AccountStatus;
  /** Create requests issued so far (each start or retry of a create is one). */
  attempts: number;
  /** The operation of the call in flight (status creating/removing) or of the last failure. */
  operation?: AccountOperation;
  /** The service's name for the account once known: the Matrix user ID, the Immich user's UUID. */
  remoteId?: string;
  /** What the member signs in with: the Matrix user ID, the Immich e-mail address. */
  login?: string;
  /** A create of ours may have reached the service with no answer: an account by this name is then ours. */
  mayExist: boolean;
  lastError?: AccountError;
  /** When a one-time password was last handed out. The password itself is never recorded. */
  passwordIssuedAt?: string;
  passwordsIssued: number;
  updatedAt: string;
}

export type AccountEvent =
  | { type: 'start' }
  | { type: 'retry' }
  | { type: 'reset' }
  | { type: 'remove' }
  /** The remote call of the current operation succeeded. */
  | { type: 'succeeded'; remoteId?: string; login?: string; passwordIssued: boolean }
  | { type: 'failed'; error: Omit<AccountError, 'at'> }
  /** The account is gone from the service (deactivated, deleted, or it never existed). */
  | { type: 'removed' };

export type RemoteCall =
  /** Create the account with a new one-time password; on "already exists", adopt it only when allowed. */
  | { kind: 'create'; adoptIfExists: boolean }
  /** Set a new one-time password on the existing account. */
  | { kind: 'set-password'; remoteId: string }
  /** Remove the account; without a remoteId, find it by the member's name first (it may not exist). */
  | { kind: 'remove'; remoteId?: string };

export interface Transition {
  state: AccountState;
  /** The call to make after recording `state`; none when the transition needs no remote work. */
  call?: RemoteCall;
  /** Set when the event does not apply in this state: `state` is then the old state, unchanged. */
  refused?: string;
}

export function initialAccountState(at: string): AccountState {
  return { status: 'pending', attempts: 0, mayExist: false, passwordsIssued: 0, updatedAt: at };
}

export function next(state: AccountState, event: AccountEvent, at: string): Transition {
  const to = (changes: Partial<AccountState>, call?: RemoteCall): Transition => ({ state: withoutUndefined({ ...state, ...changes, updatedAt: at }), call });
  const refuse = (reason: string): Transition => ({ state, refused: reason });
  const createCall = (adoptIfExists: boolean): Transition =>
    to({ status: 'creating', operation: 'create', attempts: state.attempts + 1 }, { kind: 'create', adoptIfExists });
  const removeCall = (): Transition => to({ status: 'removing', operation: 'remove' }, { kind: 'remove', remoteId: state.remoteId });

  switch (state.status) {
    case 'pending':
      if (event.type === 'start') return createCall(false);
      if (event.type === 'remove') return to({ status: 'removed', operation: 'remove' });
      return refuse(`the account has not been created yet (${event.type} does not apply)`);

    case 'creating':
      // Found on load: the agent stopped while a create was in flight, so it may exist.
      if (event.type === 'start' || event.type === 'retry') {
        const again = createCall(true);
        return { ...again, state: { ...again.state, mayExist: true } };
      }
      if (event.type === 'succeeded') {
        return to({
          status: 'created',
          operation: undefined,
          remoteId: event.remoteId ?? state.remoteId,
          login: event.login ?? state.login,
          mayExist: false,
          lastError: undefined,
          ...issued(state, event, at),
        });
      }
      if (event.type === 'failed') {
        return to({ status: 'failed', mayExist: state.mayExist || event.error.outcomeUnknown, lastError: { ...event.error, at } });
      }
      if (event.type === 'remove') return to({ status: 'removing', operation: 'remove', mayExist: true }, { kind: 'remove', remoteId: state.remoteId });
      return refuse(`a create is in progress (${event.type} does not apply)`);

    case 'created':
      if (event.type === 'reset') {
        if (!state.remoteId) return refuse('the account has no recorded identifier to reset');
        return to({ operation: 'reset' }, { kind: 'set-password', remoteId: state.remoteId });
      }
      if (event.type === 'succeeded' && state.operation === 'reset') return to({ operation: undefined, lastError: undefined, ...issued(state, event, at) });
      // A failed reset leaves a working account with its old password: still created.
      if (event.type === 'failed' && state.operation === 'reset') return to({ operation: undefined, lastError: { ...event.error, at } });
      if (event.type === 'remove') return removeCall();
      return refuse(`the account already exists (${event.type} does not apply)`);

    case 'failed':
      if (event.type === 'retry' || event.type === 'start') {
        if (state.lastError && !state.lastError.retriable) return refuse(state.lastError.message);
        if (state.operation === 'remove') return removeCall();
        return createCall(state.mayExist);
      }
      if (event.type === 'remove') {
        // Nothing of ours can be on the service: forget the member here.
        if (!state.remoteId && !state.mayExist) return to({ status: 'removed', operation: 'remove' });
        return removeCall();
      }
      return refuse(`the last ${state.operation ?? 'operation'} failed; retry or remove (${event.type} does not apply)`);

    case 'removing':
      if (event.type === 'retry' || event.type === 'remove') return removeCall();
      if (event.type === 'removed' || event.type === 'succeeded') return to({ status: 'removed', lastError: undefined });
      if (event.type === 'failed') return to({ status: 'failed', lastError: { ...event.error, at } });
      return refuse(`a removal is in progress (${event.type} does not apply)`);

    case 'removed':
      return refuse('the account was removed; a removed username cannot be used again (Matrix never reuses a user ID)');
  }
}

/** Cleared fields are left out, so a record reads back from any store exactly as it was saved. */
function withoutUndefined(state: AccountState): AccountState {
  return Object.fromEntries(Object.entries(state).filter(([, v]) => v !== undefined)) as unknown as AccountState;
}

function issued(state: AccountState, event: { passwordIssued: boolean }, at: string): Partial<AccountState> {
  return event.passwordIssued ? { passwordIssuedAt: at, passwordsIssued: state.passwordsIssued + 1 } : {};
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A one-time password, made on the device: 20 Crockford base32 symbols (100 random bits)
 * in 4 groups of 5, e.g. `7K3MQ-9XD2H-FTB8R-W4N6P`. No I, L, O or U, so nothing reads as
 * another symbol on paper; uniform, because 32 divides 256.
 */
export function generateOneTimePassword(): string {
  const symbols = Array.from(randomBytes(20), (b) => CROCKFORD[b & 31]).join('');
  return symbols.match(/.{5}/g)!.join('-');
}

export const ONE_TIME_PASSWORD_PATTERN = /^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){3}$/;

/** The agent's own administrator account on each service; no member may take the name. */
export const AGENT_ADMIN_USERNAME = 'memu-admin';

/**
 * Why `username` cannot name a family member's accounts, or undefined when it can. The
 * rules are Synapse's for new user IDs (a-z 0-9 . _ = - / +, not starting with _, not all
 * digits), narrowed to what also makes a plain e-mail local part for Immich and what a
 * person can type on a phone: lower-case letters, digits, ".", "_", "-", starting with a
 * letter or digit, no "..", not ending in ".", at most 32 characters.
 */
export function usernameProblem(username: string): string | undefined {
  if (username.length === 0) return 'the username is empty';
  if (username.length > 32) return 'the username is longer than 32 characters';
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(username)) {
    return 'a username may hold only lower-case letters a-z, digits, ".", "_" and "-", and must start with a letter or digit';
  }
  if (/^\d+$/.test(username)) return 'a username cannot be all digits (Matrix keeps those for guests)';
  if (username.includes('..') || username.endsWith('.')) return 'a username cannot hold ".." or end with "."';
  if (username === AGENT_ADMIN_USERNAME || username.startsWith(`${AGENT_ADMIN_USERNAME}-`)) return `"${username}" is kept for the device's own accounts`;
  return undefined;
}
