import type { Logger } from 'pino';
import type { AccountStore } from './account-store.ts';
import { createImmichAccounts } from './immich-accounts.ts';
import {
  ACCOUNT_SERVICES,
  generateOneTimePassword,
  initialAccountState,
  next,
  usernameProblem,
  type AccountEvent,
  type AccountService,
  type AccountState,
  type AccountStatus,
  type RemoteCall,
} from './member-accounts.ts';
import { describeFailure, type FamilyMember, type ServiceAccounts } from './service-accounts.ts';
import { createSynapseAccounts } from './synapse-accounts.ts';

export interface AccountsServiceOptions {
  /** Synapse as the agent reaches it (its client listener, which also serves the admin API); absent when the stack has none. */
  synapse?: { url: string; sharedSecret: string };
  /** Immich's server (port 2283); absent when the stack has none. */
  immich?: { url: string; hostname: string; apiKey?: string };
  store: AccountStore;
  log: Logger;
  /** How long a service's health check may take before it counts as absent. Default 2 s. */
  probeTimeoutMs?: number;
  /** How long one call may take. Default 15 s (Synapse and Immich hash passwords with bcrypt). */
  callTimeoutMs?: number;
  now?: () => Date;
}

/** One service's answer for one member. */
export interface ServiceAccountResult {
  service: AccountService;
  /** `unavailable`: the service is not installed or not answering; nothing was attempted or recorded. */
  state: AccountStatus | 'unavailable';
  /** What the member signs in with (Matrix user ID, Immich e-mail), once known. */
  login?: string;
  /** Only in the answer that issued it; never stored, never logged. */
  oneTimePassword?: string;
  error?: string;
  retriable?: boolean;
  attempts?: number;
}

export interface AccountsService {
  /** Makes (or finishes making) the member's account on every installed service. */
  createMemberAccounts(member: FamilyMember): Promise<ServiceAccountResult[]>;
  /** Sets a new one-time password on the member's account on `service`. */
  resetPassword(member: FamilyMember, service: AccountService): Promise<ServiceAccountResult>;
  /**
   * Removes the member's accounts. Without `erase`, Synapse deactivates the account (what
   * they wrote stays in the family's rooms) and Immich deletes the user restorably for its
   * delete delay; with it, Synapse also erases their messages and Immich deletes at once.
   */
  removeMember(member: FamilyMember, options?: { erase?: boolean }): Promise<ServiceAccountResult[]>;
  /** The recorded state of the member's accounts, without asking the services. */
  memberAccounts(member: FamilyMember): Promise<ServiceAccountResult[]>;
}

const SERVICE_NAMES: Record<AccountService, string> = { synapse: 'Memu Chat (Synapse)', immich: 'Memu Memories (Immich)' };

export function createAccountsService(opts: AccountsServiceOptions): AccountsService {
  const { store, log } = opts;
  const at = () => (opts.now?.() ?? new Date()).toISOString();
  const timeouts = { callTimeoutMs: opts.callTimeoutMs ?? 15_000, probeTimeoutMs: opts.probeTimeoutMs ?? 2_000 };
  const adapters = new Map<AccountService, ServiceAccounts>();
  if (opts.synapse) adapters.set('synapse', createSynapseAccounts({ ...opts.synapse, ...timeouts, store, log: log.child({ service: 'synapse' }) }));
  if (opts.immich) adapters.set('immich', createImmichAccounts({ ...opts.immich, ...timeouts, store, log: log.child({ service: 'immich' }) }));

  // One operation at a time per member and service: two clicks must not make two calls.
  const queues = new Map<string, Promise<unknown>>();
  function exclusive<T>(member: FamilyMember, service: AccountService, fn: () => Promise<T>): Promise<T> {
    const key = `${member.username}/${service}`;
    const run = (queues.get(key) ?? Promise.resolve()).then(fn, fn);
    const settled = run.catch(() => undefined);
    queues.set(key, settled);
    void settled.then(() => queues.get(key) === settled && queues.delete(key));
    return run;
  }

  async function perform(adapter: ServiceAccounts, member: FamilyMember, call: RemoteCall, erase: boolean): Promise<{ event: AccountEvent; password?: string }> {
    try {
      switch (call.kind) {
        case 'create': {
          const password = generateOneTimePassword();
          const created = await adapter.create(member, password, call.adoptIfExists);
          return { event: { type: 'succeeded', remoteId: created.remoteId, login: created.login, passwordIssued: true }, password };
        }
        case 'set-password': {
          const password = generateOneTimePassword();
          await adapter.setPassword(member, call.remoteId, password);
          return { event: { type: 'succeeded', passwordIssued: true }, password };
        }
        case 'remove':
          await adapter.remove(member, call.remoteId, erase);
          return { event: { type: 'removed' } };
      }
    } catch (err) {
      return { event: { type: 'failed', error: describeFailure(err) } };
    }
  }

  /**
   * The only path from an event to a remote call: the new state is recorded before the
   * call and the outcome after it. A service that does not answer its health check is
   * reported unavailable before anything is recorded.
   */
  async function advance(member: FamilyMember, adapter: ServiceAccounts, state: AccountState, event: AccountEvent, erase = false): Promise<ServiceAccountResult> {
    const { service } = adapter;
    const step = next(state, event, at());
    if (step.refused) return { ...result(service, state), error: step.refused, retriable: false };
    if (step.call) {
      const probe = await adapter.probe();
      if (!probe.ok) return unavailable(service, probe.reason, state);
    }
    await store.save(member.username, service, step.state);
    if (!step.call) return result(service, step.state);

    const outcome = await perform(adapter, member, step.call, erase);
    const after = next(step.state, outcome.event, at());
    if (after.refused) throw new Error(`account state machine refused the outcome of its own call: ${after.refused}`);
    await store.save(member.username, service, after.state);
    const fields = { member: member.username, service, operation: step.state.operation, status: after.state.status };
    if (outcome.event.type === 'failed') log.warn({ ...fields, error: outcome.event.error }, `${SERVICE_NAMES[service]}: ${step.call.kind} failed`);
    else log.info(fields, `${SERVICE_NAMES[service]}: ${step.call.kind} done`);
    return result(service, after.state, outcome.password);
  }

  function forEachService(fn: (service: AccountService, adapter: ServiceAccounts) => Promise<ServiceAccountResult>): Promise<ServiceAccountResult[]> {
    return Promise.all(
      ACCOUNT_SERVICES.map((service) => {
        const adapter = adapters.get(service);
        if (!adapter) return Promise.resolve(unavailable(service, `${SERVICE_NAMES[service]} is not part of the installed stack`));
        return fn(service, adapter);
      }),
    );
  }

  const load = async (member: FamilyMember, service: AccountService) => (await store.load(member.username, service)) ?? initialAccountState(at());

  return {
    async createMemberAccounts(member) {
      const problem = usernameProblem(member.username);
      if (problem) throw new Error(`cannot make accounts for "${member.username}": ${problem}`);
      return forEachService((service, adapter) =>
        exclusive(member, service, async () => {
          const state = await load(member, service);
          if (state.status === 'created') return result(service, state);
          if (state.status === 'removing' || state.status === 'removed' || (state.status === 'failed' && state.operation === 'remove')) {
            return { ...result(service, state), error: 'this member is being removed or was removed', retriable: false };
          }
          return advance(member, adapter, state, { type: state.status === 'pending' ? 'start' : 'retry' });
        }),
      );
    },

    async resetPassword(member, service) {
      const adapter = adapters.get(service);
      if (!adapter) return unavailable(service, `${SERVICE_NAMES[service]} is not part of the installed stack`);
      return exclusive(member, service, async () => advance(member, adapter, await load(member, service), { type: 'reset' }));
    },

    removeMember(member, options = {}) {
      return forEachService((service, adapter) =>
        exclusive(member, service, async () => {
          const recorded = await store.load(member.username, service);
          // Nothing recorded means no create was ever sent (the record comes first): nothing to remove.
          if (!recorded || recorded.status === 'removed') return { service, state: 'removed' };
          return advance(member, adapter, recorded, { type: 'remove' }, options.erase ?? false);
        }),
      );
    },

    memberAccounts(member) {
      return Promise.all(
        ACCOUNT_SERVICES.map(async (service) => {
          const recorded = await store.load(member.username, service);
          if (recorded) return result(service, recorded);
          if (!adapters.has(service)) return unavailable(service, `${SERVICE_NAMES[service]} is not part of the installed stack`);
          return result(service, initialAccountState(at()));
        }),
      );
    },
  };
}

function result(service: AccountService, state: AccountState, oneTimePassword?: string): ServiceAccountResult {
  return {
    service,
    state: state.status,
    ...(state.login ? { login: state.login } : {}),
    ...(oneTimePassword ? { oneTimePassword } : {}),
    ...(state.lastError ? { error: state.lastError.message, retriable: state.lastError.retriable } : {}),
    attempts: state.attempts,
  };
}

function unavailable(service: AccountService, reason: string, state?: AccountState): ServiceAccountResult {
  return { service, state: 'unavailable', error: reason, ...(state?.login ? { login: state.login } : {}) };
}
