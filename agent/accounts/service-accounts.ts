import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { AccountStore, ServiceAdminRecord } from './account-store.ts';
import { ServiceCallError } from '../../shared/http/http-json.ts';
import type { AccountError, AccountService } from './member-accounts.ts';

/** A family member as the accounts know them. */
export interface FamilyMember {
  /** The login name on every service: see usernameProblem(). */
  username: string;
  /** Free text, any script. */
  displayName: string;
}

export interface CreatedAccount {
  /** The service's name for it: Matrix user ID, Immich user UUID. */
  remoteId: string;
  /** What the member signs in with. */
  login: string;
  /** It already existed (our own earlier create, whose answer was lost) and was taken over. */
  adopted: boolean;
}

/**
 * What the accounts service needs from one family service. Each method either does its
 * whole job or throws (an AccountFailure when the reason is known, a ServiceCallError
 * when the call itself failed).
 */
export interface ServiceAccounts {
  readonly service: AccountService;
  /** Whether the service is there at all: its health endpoint, with a short timeout. */
  probe(): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Makes the account with `password`; an existing one is adopted (password set) only when allowed. */
  create(member: FamilyMember, password: string, adoptIfExists: boolean): Promise<CreatedAccount>;
  setPassword(member: FamilyMember, remoteId: string, password: string): Promise<void>;
  /** Removes the account; succeeds when there is nothing to remove. */
  remove(member: FamilyMember, remoteId: string | undefined, erase: boolean): Promise<void>;
}

/** What every service's accounts are built with. */
export interface ServiceAccountsOptions {
  url: string;
  store: Pick<AccountStore, 'loadAdmin' | 'saveAdmin'>;
  log: Logger;
  callTimeoutMs: number;
  probeTimeoutMs: number;
}

/**
 * A new administrator record for the agent on `service`, with a random password. It is
 * recorded before the account is made, so that a lost answer is recovered by signing in.
 */
export async function newAdminRecord(store: ServiceAccountsOptions['store'], service: AccountService, login: string): Promise<ServiceAdminRecord> {
  const record = { login, password: randomBytes(32).toString('base64url') };
  await store.saveAdmin(service, record);
  return record;
}

/** A failure whose meaning is known, worded for the person at the dashboard. */
export class AccountFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retriable: boolean,
    readonly outcomeUnknown = false,
  ) {
    super(message);
    this.name = 'AccountFailure';
  }
}

/** The record of a failure, from whatever a service method threw. */
export function describeFailure(err: unknown): Omit<AccountError, 'at'> {
  if (err instanceof AccountFailure) {
    return { code: err.code, message: err.message, retriable: err.retriable, outcomeUnknown: err.outcomeUnknown };
  }
  if (err instanceof ServiceCallError) {
    const code = err.failure === 'answer' ? `http-${err.status}` : err.failure;
    return { code, message: err.message, retriable: true, outcomeUnknown: err.outcomeUnknown };
  }
  // A bug or an unexpected answer: the request may have gone out, so assume it might have worked.
  return { code: 'internal', message: err instanceof Error ? err.message : String(err), retriable: true, outcomeUnknown: true };
}

export interface AdminSessionOptions<S> {
  service: AccountService;
  store: ServiceAccountsOptions['store'];
  log: Logger;
  /** Makes the session from the stored credentials, registering or signing up first when needed. */
  establish: () => Promise<S>;
  /** Signs in with the recorded credentials (to renew a session the service stopped accepting). */
  signIn: (record: ServiceAdminRecord) => Promise<S>;
  /** Whether `err` says the service no longer accepts `session` (then it is renewed once). */
  rejected: (err: unknown, session: S) => boolean;
}

/**
 * Runs calls as the agent's administrator on a service: the session is established once
 * and shared by concurrent callers, and renewed once when the service stops accepting it
 * (an expired token, a sign-out everywhere).
 */
export function adminSession<S>(opts: AdminSessionOptions<S>): <T>(fn: (session: S) => Promise<T>) => Promise<T> {
  let current: S | undefined;
  let pending: Promise<S> | undefined;
  const renew = async (): Promise<S> => {
    opts.log.info(`${opts.service} no longer accepts the agent's admin session; signing in again`);
    const record = await opts.store.loadAdmin(opts.service);
    if (!record) throw new AccountFailure('admin-lost', `the record of the agent's ${opts.service} admin account is gone`, true);
    return opts.signIn(record);
  };
  const session = (make: () => Promise<S>): Promise<S> => {
    if (current !== undefined) return Promise.resolve(current);
    pending ??= make()
      .then((made) => (current = made))
      .finally(() => (pending = undefined));
    return pending;
  };
  return async (fn) => {
    const used = await session(opts.establish);
    try {
      return await fn(used);
    } catch (err) {
      if (!opts.rejected(err, used)) throw err;
      if (current === used) current = undefined;
      return fn(await session(renew));
    }
  };
}
