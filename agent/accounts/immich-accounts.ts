import type { ServiceAdminRecord } from './account-store.ts';
import { AGENT_ADMIN_USERNAME } from './member-accounts.ts';
import { ImmichAdminClient, ImmichApiError, immichEmail, type ImmichAuth } from './immich-admin.ts';
import { AccountFailure, adminSession, newAdminRecord, type CreatedAccount, type FamilyMember, type ServiceAccounts, type ServiceAccountsOptions } from './service-accounts.ts';

/**
 * Family members' Immich users, made through the admin API as the agent's own Immich
 * administrator: the first account on a fresh Immich (admin sign-up), signed in to by
 * e-mail and password. An API key given in the settings is used instead when Immich's
 * administrator was made by somebody else. New users must change the one-time password
 * at their first sign-in (`shouldChangePassword`).
 */
export interface ImmichAccountsOptions extends ServiceAccountsOptions {
  /** The device's host name: the domain of the members' e-mail addresses (immichEmail). */
  hostname: string;
  /** An Immich API key of an administrator, when the agent cannot be Immich's administrator itself. */
  apiKey?: string;
}

export function createImmichAccounts(opts: ImmichAccountsOptions): ServiceAccounts {
  const client = new ImmichAdminClient(opts.url, opts.callTimeoutMs);
  const { log, store } = opts;

  /** The configured API key, the stored session, else sign up as Immich's first administrator and sign in. */
  async function establish(): Promise<ImmichAuth> {
    if (opts.apiKey) return { apiKey: opts.apiKey };
    // A reserved username, so no member's address can be the admin's.
    const record = (await store.loadAdmin('immich')) ?? (await newAdminRecord(store, 'immich', immichEmail(AGENT_ADMIN_USERNAME, opts.hostname)));
    if (record.accessToken) return { accessToken: record.accessToken };
    try {
      await client.signUpAdmin({ email: record.login, password: record.password, name: 'Memu' });
      log.info({ email: record.login }, 'signed up as Immich’s administrator');
    } catch (err) {
      if (!(err instanceof ImmichApiError && err.has('The server already has an admin'))) throw err;
    }
    return signIn(record);
  }

  async function signIn(record: ServiceAdminRecord): Promise<ImmichAuth> {
    let login;
    try {
      login = await client.login({ email: record.login, password: record.password });
    } catch (err) {
      if (err instanceof ImmichApiError && err.status === 401) {
        throw new AccountFailure(
          'admin-unknown',
          'Immich does not accept the device as its administrator (someone signed up in Immich before the setup, or changed the password). ' +
            'Sign in to Immich as its administrator, create an API key (Account Settings → API Keys) and enter it in the dashboard',
          true,
        );
      }
      throw err;
    }
    if (!login.isAdmin) throw new AccountFailure('admin-unknown', `the device's Immich account ${record.login} is not an administrator`, true);
    await store.saveAdmin('immich', { ...record, userId: login.userId, accessToken: login.accessToken });
    return { accessToken: login.accessToken };
  }

  const asAdmin = adminSession<ImmichAuth>({
    service: 'immich',
    store,
    log,
    establish,
    signIn,
    // An API key Immich refuses is the settings' problem: signing in would not help.
    rejected: (err, auth) => err instanceof ImmichApiError && err.status === 401 && !('apiKey' in auth),
  });

  const findByEmail = async (email: string) => (await asAdmin((auth) => client.listUsers(auth))).find((u) => u.email.toLowerCase() === email);

  return {
    service: 'immich',

    probe: () => client.health(opts.probeTimeoutMs),

    async create(member: FamilyMember, password: string, adoptIfExists: boolean): Promise<CreatedAccount> {
      const email = immichEmail(member.username, opts.hostname);
      try {
        const user = await asAdmin((auth) => client.createUser(auth, { email, name: member.displayName, password, shouldChangePassword: true }));
        return { remoteId: user.id, login: email, adopted: false };
      } catch (err) {
        if (!(err instanceof ImmichApiError && err.status === 400 && err.has('User exists'))) throw err;
      }
      if (!adoptIfExists) {
        throw new AccountFailure('exists', `Immich already has a user ${email} that this device did not make for this member: choose another username`, false);
      }
      const existing = await findByEmail(email);
      if (!existing) throw new AccountFailure('exists', `Immich reports ${email} as taken but lists no such user`, true, true);
      await asAdmin((auth) => client.updateUser(auth, existing.id, { password, shouldChangePassword: true }));
      log.info({ email }, 'adopted the Immich user an earlier create made (its answer was lost); new one-time password set');
      return { remoteId: existing.id, login: email, adopted: true };
    },

    async setPassword(_member: FamilyMember, remoteId: string, password: string): Promise<void> {
      try {
        await asAdmin((auth) => client.updateUser(auth, remoteId, { password, shouldChangePassword: true }));
      } catch (err) {
        if (err instanceof ImmichApiError && err.has('User not found')) throw new AccountFailure('missing', `Immich has no user ${remoteId} any more`, false);
        throw err;
      }
    },

    async remove(member: FamilyMember, remoteId: string | undefined, erase: boolean): Promise<void> {
      const id = remoteId ?? (await findByEmail(immichEmail(member.username, opts.hostname)))?.id;
      if (!id) return; // never created: nothing to remove
      try {
        // Without force Immich keeps the user and their photos restorable for its delete delay (7 days).
        await asAdmin((auth) => client.deleteUser(auth, id, { force: erase }));
      } catch (err) {
        if (!(err instanceof ImmichApiError && err.has('User not found'))) throw err; // already deleted
      }
    },
  };
}
