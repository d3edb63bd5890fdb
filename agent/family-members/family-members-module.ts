import type { Logger } from 'pino';
import { createAccountsService, usernameProblem as accountUsernameProblem, type AccountService, type AccountsService, type ServiceAccountResult } from '../accounts/index.ts';
import { recordAudit } from '../audit-log/index.ts';
import { displayTextProblem, usernameProblem } from '../admin-auth/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import type { AgentModule } from '../module.ts';
import { memuDbAccountStore } from './account-records.ts';
import { findMember, insertMember, listMembers, markMemberRemoved, type Member } from './members.ts';

/**
 * Where the stack's account services are, from the agent on the host: Synapse's client
 * listener on 127.0.0.1:8008 (compose/stack.yml publishes it on loopback only) and Immich
 * on its photos port. A stack without the service (the demo's) has none.
 */
export interface AccountServiceEndpoints {
  synapse?: { url: string; sharedSecret: string };
  immich?: { url: string; hostname: string };
}

export interface FamilyMembersOptions {
  db: () => FamilyDb;
  dataDir: string;
  /** Asked when accounts are first needed (after setup, when the stack and its secrets exist). */
  endpoints: () => Promise<AccountServiceEndpoints>;
}

export interface MemberWithAccounts extends Member {
  accounts: ServiceAccountResult[];
}

export type AddMemberResult = { problems: Partial<Record<'username' | 'displayName', string>> } | { member: Member; accounts: ServiceAccountResult[] };

export interface FamilyMembersModule extends AgentModule {
  list(): Promise<MemberWithAccounts[]>;
  /** What is wrong with a new member's name and username, before anything is recorded; undefined when nothing. */
  check(input: { username: string; displayName: string }): Partial<Record<'username' | 'displayName', string>> | undefined;
  /** Records the member, then makes their accounts; each service's outcome (with its one-time password) is returned once. */
  add(input: { username: string; displayName: string }, actor: string): Promise<AddMemberResult>;
  /** Tries again what failed (or was left unfinished) for this member. */
  retry(username: string, actor: string): Promise<ServiceAccountResult[]>;
  resetPassword(username: string, service: AccountService, actor: string): Promise<ServiceAccountResult>;
  remove(username: string, actor: string): Promise<ServiceAccountResult[]>;
}

/** The family's members (memu.db) and their accounts on the stack's services (agent/accounts). */
export function createFamilyMembersModule(opts: FamilyMembersOptions, log: Logger): FamilyMembersModule {
  let accounts: Promise<AccountsService> | undefined;
  const service = () =>
    (accounts ??= opts.endpoints().then((endpoints) =>
      createAccountsService({ ...endpoints, store: memuDbAccountStore(opts.db, opts.dataDir), log: log.child({ part: 'accounts' }) }),
    ).catch((err: unknown) => {
      accounts = undefined;
      throw err;
    }));
  const member = (username: string): Member => {
    const found = findMember(opts.db(), username);
    if (!found || found.removedAt !== null) throw new Error(`${username} is not a member of this family`);
    return found;
  };
  const audit = (actor: string, action: string, detail: Record<string, unknown>) => opts.db().transaction(() => recordAudit(opts.db(), actor, action, detail));
  const summary = (results: ServiceAccountResult[]) => Object.fromEntries(results.map((r) => [r.service, r.state]));
  const check = (input: { username: string; displayName: string }) => {
    const problems: Partial<Record<'username' | 'displayName', string>> = {};
    // Both the services' rules and memu.db's (which wants a letter first).
    const u = accountUsernameProblem(input.username) ?? usernameProblem(input.username);
    if (u) problems.username = u;
    else if (findMember(opts.db(), input.username)) problems.username = 'is already taken by a member (a removed member\'s name stays taken)';
    const d = displayTextProblem(input.displayName, 'the name');
    if (d) problems.displayName = d;
    return Object.keys(problems).length > 0 ? problems : undefined;
  };

  return {
    name: 'family-members',
    async start() {},
    async stop() {},
    async list() {
      const accountsService = await service();
      return Promise.all(listMembers(opts.db()).map(async (m) => ({ ...m, accounts: await accountsService.memberAccounts(m) })));
    },
    check,
    async add(input, actor) {
      const problems = check(input);
      if (problems) return { problems };
      const added = insertMember(opts.db(), input, actor);
      const results = await (await service()).createMemberAccounts(added);
      audit(actor, 'member.accounts', { username: added.username, ...summary(results) });
      return { member: added, accounts: results };
    },
    async retry(username, actor) {
      const results = await (await service()).createMemberAccounts(member(username));
      audit(actor, 'member.accounts', { username, ...summary(results) });
      return results;
    },
    async resetPassword(username, svc, actor) {
      const result = await (await service()).resetPassword(member(username), svc);
      audit(actor, 'member.reset-password', { username, service: svc, state: result.state });
      return result;
    },
    async remove(username, actor) {
      const results = await (await service()).removeMember(member(username));
      if (results.every((r) => r.state === 'removed' || r.state === 'unavailable' || r.state === 'pending')) markMemberRemoved(opts.db(), username, actor);
      else audit(actor, 'member.remove-failed', { username, ...summary(results) });
      return results;
    },
  };
}
