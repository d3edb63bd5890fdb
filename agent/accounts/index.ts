/**
 * Family members' accounts on the stack's services: a Matrix account on Synapse and a
 * user on Immich per member, each with a one-time password handed out once; reset and
 * removal later. Records go through an injected AccountStore (memu.db on the device).
 */
export { createAccountsService } from './accounts-service.ts';
export type { AccountsService, AccountsServiceOptions, ServiceAccountResult } from './accounts-service.ts';
export { createMemoryAccountStore } from './account-store.ts';
export type { AccountStore, ServiceAdminRecord } from './account-store.ts';
export { immichEmail } from './immich-admin.ts';
export {
  ACCOUNT_SERVICES,
  AGENT_ADMIN_USERNAME,
  ONE_TIME_PASSWORD_PATTERN,
  generateOneTimePassword,
  initialAccountState,
  next,
  usernameProblem,
} from './member-accounts.ts';
export type { AccountError, AccountEvent, AccountService, AccountState, AccountStatus, RemoteCall, Transition } from './member-accounts.ts';
export type { FamilyMember } from './service-accounts.ts';
