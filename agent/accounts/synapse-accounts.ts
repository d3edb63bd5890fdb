import { randomBytes } from 'node:crypto';
import type { ServiceAdminRecord } from './account-store.ts';
import { AGENT_ADMIN_USERNAME } from './member-accounts.ts';
import { AccountFailure, adminSession, newAdminRecord, type CreatedAccount, type FamilyMember, type ServiceAccounts, type ServiceAccountsOptions } from './service-accounts.ts';
import { SynapseAdminClient, SynapseApiError } from './synapse-admin.ts';

/**
 * Family members' Matrix accounts. Members are registered with the shared secret (no
 * access token is issued for them: `inhibit_login`, so no stray session shows in their
 * device list); everything else goes through the admin API with the token of the agent's
 * own admin account, `memu-admin`, which the agent registers once with the same secret.
 */
const AGENT_DEVICE_NAME = 'Memu agent';

export interface SynapseAccountsOptions extends ServiceAccountsOptions {
  sharedSecret: string;
}

interface AdminSession {
  userId: string;
  accessToken: string;
}

export function createSynapseAccounts(opts: SynapseAccountsOptions): ServiceAccounts {
  const client = new SynapseAdminClient(opts.url, opts.callTimeoutMs);
  const { log, store } = opts;

  /** The stored admin session, else a new one: registered, or signed in to when the account exists. */
  async function establish(): Promise<AdminSession> {
    const record = (await store.loadAdmin('synapse')) ?? (await newAdminRecord(store, 'synapse', AGENT_ADMIN_USERNAME));
    if (record.accessToken && record.userId) return { userId: record.userId, accessToken: record.accessToken };
    return signIn(record, true);
  }

  async function signIn(record: ServiceAdminRecord, mayRegister: boolean): Promise<AdminSession> {
    let result: { user_id: string; access_token?: string } | undefined;
    if (mayRegister) {
      try {
        result = await client.register(opts.sharedSecret, {
          username: record.login,
          displayName: 'Memu',
          password: record.password,
          admin: true,
          deviceName: AGENT_DEVICE_NAME,
        });
        log.info({ userId: result.user_id }, 'registered the agent’s Synapse admin account');
      } catch (err) {
        if (!hasErrcode(err, 'M_USER_IN_USE')) throw registrationFailure(err);
      }
    }
    if (!result?.access_token) {
      try {
        result = await client.login(record.login, record.password, AGENT_DEVICE_NAME);
      } catch (err) {
        if (!hasErrcode(err, 'M_FORBIDDEN') && !hasErrcode(err, 'M_USER_DEACTIVATED')) throw err;
        // An account by our admin's name that this device cannot sign in to (memu.db restored
        // from before it was made, say): the shared secret can always make another.
        if (!mayRegister || record.login !== AGENT_ADMIN_USERNAME) throw adminLost(record.login, err);
        const fresh = await newAdminRecord(store, 'synapse', `${AGENT_ADMIN_USERNAME}-${randomBytes(3).toString('hex')}`);
        log.warn({ previous: record.login, next: fresh.login }, 'cannot sign in to the Synapse admin account by its recorded password; registering another');
        return signIn(fresh, true);
      }
    }
    const session = { userId: result.user_id, accessToken: result.access_token! };
    await store.saveAdmin('synapse', { ...record, ...session });
    return session;
  }

  const asAdmin = adminSession<AdminSession>({
    service: 'synapse',
    store,
    log,
    establish,
    signIn: (record) => signIn(record, false),
    rejected: (err) => err instanceof SynapseApiError && err.status === 401,
  });

  /** `@username:server` on this homeserver (the server name is the admin's user ID's domain). */
  const userIdOf = async (username: string) => {
    const { userId } = await asAdmin(async (session) => session);
    return `@${username}:${userId.slice(userId.indexOf(':') + 1)}`;
  };

  return {
    service: 'synapse',

    probe: () => client.health(opts.probeTimeoutMs),

    async create(member: FamilyMember, password: string, adoptIfExists: boolean): Promise<CreatedAccount> {
      const userId = await userIdOf(member.username);
      try {
        const registered = await client.register(opts.sharedSecret, {
          username: member.username,
          displayName: member.displayName,
          password,
          admin: false,
          inhibitLogin: true,
        });
        return { remoteId: registered.user_id, login: registered.user_id, adopted: false };
      } catch (err) {
        if (hasErrcode(err, 'M_INVALID_USERNAME')) {
          throw new AccountFailure('invalid-username', `Synapse refused the username "${member.username}": ${err.error}`, false);
        }
        if (!hasErrcode(err, 'M_USER_IN_USE')) throw registrationFailure(err);
      }
      if (!adoptIfExists) {
        throw new AccountFailure('exists', `Synapse already has an account ${userId} that this device did not make for this member: choose another username`, false);
      }
      const user = await asAdmin(({ accessToken }) => client.queryUser(accessToken, userId));
      if (!user) throw new AccountFailure('exists', `Synapse reports ${userId} as taken but has no such account: choose another username`, false);
      if (user.deactivated) {
        throw new AccountFailure('not-reusable', `${userId} belonged to a removed account and Matrix never gives a user ID out again: choose another username`, false);
      }
      await asAdmin(({ accessToken }) => client.resetPassword(accessToken, userId, password, true));
      log.info({ userId }, 'adopted the Matrix account an earlier create made (its answer was lost); new one-time password set');
      return { remoteId: userId, login: userId, adopted: true };
    },

    async setPassword(_member: FamilyMember, remoteId: string, password: string): Promise<void> {
      try {
        await asAdmin(({ accessToken }) => client.resetPassword(accessToken, remoteId, password, true));
      } catch (err) {
        if (hasErrcode(err, 'M_NOT_FOUND')) throw new AccountFailure('missing', `Synapse has no account ${remoteId} any more`, false);
        throw err;
      }
    },

    async remove(member: FamilyMember, remoteId: string | undefined, erase: boolean): Promise<void> {
      const userId = remoteId ?? (await userIdOf(member.username));
      try {
        await asAdmin(({ accessToken }) => client.deactivate(accessToken, userId, erase));
      } catch (err) {
        if (!hasErrcode(err, 'M_NOT_FOUND')) throw err; // never created: nothing to remove
      }
    },
  };
}

function hasErrcode(err: unknown, errcode: string): err is SynapseApiError {
  return err instanceof SynapseApiError && err.errcode === errcode;
}

/** Registration refusals that mean the device's setup is wrong, worded so; others unchanged. */
function registrationFailure(err: unknown): unknown {
  if (err instanceof SynapseApiError && err.status === 403 && err.error === 'HMAC incorrect') {
    return new AccountFailure('shared-secret', 'Synapse refused the registration: its registration_shared_secret is not the one this device holds', true);
  }
  if (err instanceof SynapseApiError && err.error === 'Shared secret registration is not enabled') {
    return new AccountFailure('shared-secret', 'Synapse has no registration_shared_secret configured, so the device cannot make accounts', true);
  }
  return err;
}

function adminLost(login: string, err: unknown): AccountFailure {
  const why = err instanceof SynapseApiError ? err.error : String(err);
  return new AccountFailure('admin-lost', `the device cannot sign in to its Synapse admin account ${login} (${why})`, true);
}
