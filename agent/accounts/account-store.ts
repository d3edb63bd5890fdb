import type { AccountService, AccountState } from './member-accounts.ts';

/**
 * Where account records live: the web module backs this with memu.db, the tests with
 * memory. `save` must be durable when it returns: the records are written before and
 * after every remote call, and a record that did not reach the disk is a half-recorded
 * account.
 */
export interface AccountStore {
  load(username: string, service: AccountService): Promise<AccountState | undefined>;
  save(username: string, service: AccountService, state: AccountState): Promise<void>;
  /** The agent's own administrator credentials on a service (secrets: keep them like the stack secrets). */
  loadAdmin(service: AccountService): Promise<ServiceAdminRecord | undefined>;
  saveAdmin(service: AccountService, record: ServiceAdminRecord): Promise<void>;
}

/**
 * The agent's administrator account on a service. The password is recorded before the
 * account is registered, so a lost answer can be recovered by logging in with it.
 */
export interface ServiceAdminRecord {
  /** Synapse: the localpart (memu-admin); Immich: the e-mail address. */
  login: string;
  password: string;
  /** Synapse: the full user ID, whose domain is the server name. */
  userId?: string;
  accessToken?: string;
}

/** An AccountStore in memory, for tests and tools; records are copied in and out like a database would. */
export function createMemoryAccountStore(): AccountStore & {
  records: Map<string, AccountState>;
  admins: Map<AccountService, ServiceAdminRecord>;
} {
  const records = new Map<string, AccountState>();
  const admins = new Map<AccountService, ServiceAdminRecord>();
  const key = (username: string, service: AccountService) => `${username}/${service}`;
  const copy = <T>(value: T | undefined): T | undefined => (value === undefined ? undefined : (structuredClone(value) as T));
  return {
    records,
    admins,
    load: async (username, service) => copy(records.get(key(username, service))),
    save: async (username, service, state) => void records.set(key(username, service), copy(state)!),
    loadAdmin: async (service) => copy(admins.get(service)),
    saveAdmin: async (service, record) => void admins.set(service, copy(record)!),
  };
}
