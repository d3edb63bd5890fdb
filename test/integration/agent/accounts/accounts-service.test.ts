/**
 * Family members' accounts end to end over real HTTP, against the FAKE Synapse and the
 * FAKE Immich (test/helpers/fake-synapse.ts, fake-immich.ts), which implement the real
 * services' endpoints and refusals and can be told to fail, hang, or carry out a request
 * and lose its answer. Every test checks what the services hold, not only what the
 * accounts service says.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createAccountsService,
  createMemoryAccountStore,
  ONE_TIME_PASSWORD_PATTERN,
  type AccountsService,
  type AccountsServiceOptions,
  type AccountStore,
  type ServiceAccountResult,
} from '../../../../agent/accounts/index.ts';
import { FakeImmich } from '../../../helpers/fake-immich.ts';
import { FakeSynapse } from '../../../helpers/fake-synapse.ts';

const SECRET = 'registration-shared-secret-for-tests';
const HOST = 'memu-hub';
const anna = { username: 'anna', displayName: 'Anna Müller' };
const ben = { username: 'ben', displayName: 'Ben' };
const ANNA_MXID = '@anna:memu-hub.home.arpa';
const ANNA_EMAIL = 'anna@memu-hub.home.arpa';
const REGISTER = { method: 'POST', path: '/_synapse/admin/v1/register' };
const CREATE_USER = { method: 'POST', path: '/api/admin/users' };

let synapse: FakeSynapse;
let immich: FakeImmich;
let store: ReturnType<typeof createMemoryAccountStore>;
let logLines: string[];
let accounts: AccountsService;

function service(overrides: Partial<AccountsServiceOptions> = {}): AccountsService {
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (logLines.push(chunk.toString()), done()) });
  return createAccountsService({
    synapse: { url: synapse.url, sharedSecret: SECRET },
    immich: { url: immich.url, hostname: HOST },
    store,
    log: pino({ level: 'debug' }, sink),
    probeTimeoutMs: 1_000,
    callTimeoutMs: 2_000,
    ...overrides,
  });
}

const byService = (results: ServiceAccountResult[]) => Object.fromEntries(results.map((r) => [r.service, r])) as Record<'synapse' | 'immich', ServiceAccountResult>;

beforeEach(async () => {
  synapse = new FakeSynapse({ sharedSecret: SECRET, serverName: 'memu-hub.home.arpa' });
  immich = new FakeImmich();
  await Promise.all([synapse.start(), immich.start()]);
  store = createMemoryAccountStore();
  logLines = [];
  accounts = service();
});
afterEach(() => Promise.all([synapse.stop(), immich.stop()]));

describe('creating a member', () => {
  it('makes both accounts, each with a one-time password shown once and stored nowhere', async () => {
    const { synapse: chat, immich: photos } = byService(await accounts.createMemberAccounts(anna));
    expect(chat).toMatchObject({ state: 'created', login: ANNA_MXID, oneTimePassword: expect.stringMatching(ONE_TIME_PASSWORD_PATTERN), attempts: 1 });
    expect(photos).toMatchObject({ state: 'created', login: ANNA_EMAIL, oneTimePassword: expect.stringMatching(ONE_TIME_PASSWORD_PATTERN), attempts: 1 });
    expect(chat.oneTimePassword).not.toBe(photos.oneTimePassword);

    expect(synapse.passwordWorks(ANNA_MXID, chat.oneTimePassword!)).toBe(true);
    expect(synapse.users.get(ANNA_MXID)).toMatchObject({ displayname: 'Anna Müller', admin: false });
    expect(synapse.tokenCount(ANNA_MXID)).toBe(0); // no session in her device list that nobody holds
    expect(immich.passwordWorks(ANNA_EMAIL, photos.oneTimePassword!)).toBe(true);
    expect(immich.activeByEmail(ANNA_EMAIL)).toMatchObject({ name: 'Anna Müller', isAdmin: false, shouldChangePassword: true });
    // the agent's own admin accounts, made on the way
    expect(synapse.users.get('@memu-admin:memu-hub.home.arpa')?.admin).toBe(true);
    expect(immich.activeByEmail('memu-admin@memu-hub.home.arpa')?.isAdmin).toBe(true);

    const recorded = JSON.stringify([...store.records.values()]);
    const logged = logLines.join('');
    for (const secret of [chat.oneTimePassword!, photos.oneTimePassword!]) {
      expect(recorded).not.toContain(secret);
      expect(logged).not.toContain(secret);
    }
    expect(await store.load('anna', 'synapse')).toMatchObject({ status: 'created', remoteId: ANNA_MXID, passwordsIssued: 1, passwordIssuedAt: expect.any(String) });
    expect(logged).not.toContain((await store.loadAdmin('synapse'))!.password);
    expect(logged).not.toContain((await store.loadAdmin('immich'))!.password);
  });

  it('asking again changes nothing and hands out no password', async () => {
    await accounts.createMemberAccounts(anna);
    const before = synapse.requests.length + immich.requests.length;
    const again = byService(await accounts.createMemberAccounts(anna));
    expect(again.synapse).toEqual({ service: 'synapse', state: 'created', login: ANNA_MXID, attempts: 1 });
    expect(again.immich.oneTimePassword).toBeUndefined();
    expect(synapse.requests.length + immich.requests.length).toBe(before);
  });

  it('twice at once makes one account per service and one password', async () => {
    const [first, second] = await Promise.all([accounts.createMemberAccounts(anna), accounts.createMemberAccounts(anna)]);
    const issued = [...first!, ...second!].filter((r) => r.oneTimePassword);
    expect(issued.map((r) => r.service).sort()).toEqual(['immich', 'synapse']);
    expect([...immich.users.values()].filter((u) => u.email === ANNA_EMAIL)).toHaveLength(1);
    expect(synapse.requests.filter((r) => r.method === 'POST' && r.path === REGISTER.path)).toHaveLength(2); // admin, anna
  });

  it('refuses a username the services would refuse, before calling them', async () => {
    await expect(accounts.createMemberAccounts({ username: 'Anna!', displayName: 'Anna' })).rejects.toThrow(/lower-case letters/);
    expect(synapse.requests).toHaveLength(0);
  });
});

describe('a username somebody else already has', () => {
  it('is not taken over: the create fails for good, saying so, and removing the member touches nothing', async () => {
    synapse.addUser('anna', 'their-own-password');
    await accounts.createMemberAccounts(ben); // the admin accounts exist from here on
    immich.addUser(ANNA_EMAIL, 'their-own-password');

    const first = byService(await accounts.createMemberAccounts(anna));
    expect(first.synapse).toMatchObject({ state: 'failed', retriable: false, error: expect.stringContaining('did not make for this member') });
    expect(first.immich).toMatchObject({ state: 'failed', retriable: false, error: expect.stringContaining('did not make for this member') });
    expect(synapse.passwordWorks(ANNA_MXID, 'their-own-password')).toBe(true);
    expect(immich.passwordWorks(ANNA_EMAIL, 'their-own-password')).toBe(true);

    const again = byService(await accounts.createMemberAccounts(anna));
    expect(again.synapse).toMatchObject({ state: 'failed', retriable: false, attempts: 1 });

    const calls = synapse.requests.length + immich.requests.length;
    expect((await accounts.removeMember(anna)).map((r) => r.state)).toEqual(['removed', 'removed']);
    expect(synapse.requests.length + immich.requests.length).toBe(calls);
    expect(synapse.users.get(ANNA_MXID)?.deactivated).toBe(false);
  });
});

describe('a failure on one service', () => {
  it('is shown for that service only, and a retry finishes the job', async () => {
    await accounts.createMemberAccounts(ben);
    immich.failNext(1, 'error', CREATE_USER);
    const first = byService(await accounts.createMemberAccounts(anna));
    expect(first.synapse.state).toBe('created');
    expect(first.immich).toMatchObject({ state: 'failed', retriable: true, attempts: 1, error: expect.stringMatching(/Immich answered HTTP 500: Internal server error/) });
    expect(first.immich.oneTimePassword).toBeUndefined();

    const retry = byService(await accounts.createMemberAccounts(anna));
    expect(retry.synapse).toMatchObject({ state: 'created' });
    expect(retry.synapse.oneTimePassword).toBeUndefined();
    expect(retry.immich).toMatchObject({ state: 'created', attempts: 2, oneTimePassword: expect.any(String) });
    expect(retry.immich.error).toBeUndefined();
    expect(immich.passwordWorks(ANNA_EMAIL, retry.immich.oneTimePassword!)).toBe(true);
  });

  it('is recovered on the first call too, while the admin account is being made', async () => {
    synapse.failNext(1, 'error', REGISTER);
    expect(byService(await accounts.createMemberAccounts(anna)).synapse).toMatchObject({ state: 'failed', retriable: true });
    const retry = byService(await accounts.createMemberAccounts(anna));
    expect(synapse.passwordWorks(ANNA_MXID, retry.synapse.oneTimePassword!)).toBe(true);
  });
});

describe('an answer lost after the service did the work', () => {
  it('is recovered on retry by adopting the account, never by making a second one', async () => {
    await accounts.createMemberAccounts(ben);
    synapse.failNext(1, 'lose-answer', REGISTER);
    immich.failNext(1, 'lose-answer', CREATE_USER);
    const lost = byService(await accounts.createMemberAccounts(anna));
    expect(lost.synapse).toMatchObject({ state: 'failed', retriable: true, error: expect.stringContaining('connection broke') });
    expect(lost.immich).toMatchObject({ state: 'failed', retriable: true });
    expect(synapse.users.has(ANNA_MXID)).toBe(true); // it happened
    expect(immich.activeByEmail(ANNA_EMAIL)).toBeDefined();

    const retry = byService(await accounts.createMemberAccounts(anna));
    expect(retry.synapse).toMatchObject({ state: 'created', login: ANNA_MXID, attempts: 2 });
    expect(retry.immich).toMatchObject({ state: 'created', login: ANNA_EMAIL, attempts: 2 });
    expect(synapse.passwordWorks(ANNA_MXID, retry.synapse.oneTimePassword!)).toBe(true);
    expect(immich.passwordWorks(ANNA_EMAIL, retry.immich.oneTimePassword!)).toBe(true);
    expect([...immich.users.values()].filter((u) => u.email === ANNA_EMAIL)).toHaveLength(1);
    expect((await store.load('anna', 'immich'))?.remoteId).toBe(immich.activeByEmail(ANNA_EMAIL)!.id);
  });

  it('or by the agent stopping between the call and its record: the next run adopts', async () => {
    const crashing: AccountStore = {
      ...store,
      async save(username, svc, state) {
        if (state.status === 'created') throw new Error('power cut');
        return store.save(username, svc, state);
      },
    };
    await expect(service({ store: crashing }).createMemberAccounts(anna)).rejects.toThrow('power cut');
    expect((await store.load('anna', 'synapse'))?.status).toBe('creating');
    expect((await store.load('anna', 'immich'))?.status).toBe('creating');

    const restarted = byService(await service().createMemberAccounts(anna));
    expect(restarted.synapse).toMatchObject({ state: 'created', oneTimePassword: expect.any(String) });
    expect(restarted.immich).toMatchObject({ state: 'created', oneTimePassword: expect.any(String) });
    expect(synapse.passwordWorks(ANNA_MXID, restarted.synapse.oneTimePassword!)).toBe(true);
    expect(immich.passwordWorks(ANNA_EMAIL, restarted.immich.oneTimePassword!)).toBe(true);
    expect([...immich.users.values()].filter((u) => u.email === ANNA_EMAIL)).toHaveLength(1);
  });

  it('a call that hangs times out as a retriable failure', async () => {
    await accounts.createMemberAccounts(ben);
    immich.failNext(1, 'hang', CREATE_USER);
    const hung = byService(await service({ callTimeoutMs: 300 }).createMemberAccounts(anna));
    expect(hung.immich).toMatchObject({ state: 'failed', retriable: true, error: expect.stringContaining('did not answer within 300 ms') });
    expect(byService(await accounts.createMemberAccounts(anna)).immich.state).toBe('created');
  });
});

describe('resetting a password', () => {
  it('hands out a new one-time password; the old one stops working', async () => {
    const first = byService(await accounts.createMemberAccounts(anna));
    synapse.issueToken(ANNA_MXID); // her phone, signed in
    const chat = await accounts.resetPassword(anna, 'synapse');
    expect(synapse.tokenCount(ANNA_MXID)).toBe(0); // signed out everywhere
    const photos = await accounts.resetPassword(anna, 'immich');
    expect(chat).toMatchObject({ state: 'created', oneTimePassword: expect.stringMatching(ONE_TIME_PASSWORD_PATTERN) });
    expect(synapse.passwordWorks(ANNA_MXID, chat.oneTimePassword!)).toBe(true);
    expect(synapse.passwordWorks(ANNA_MXID, first.synapse.oneTimePassword!)).toBe(false);
    expect(immich.passwordWorks(ANNA_EMAIL, photos.oneTimePassword!)).toBe(true);
    expect(immich.activeByEmail(ANNA_EMAIL)?.shouldChangePassword).toBe(true);
    expect(await store.load('anna', 'synapse')).toMatchObject({ passwordsIssued: 2 });
  });

  it('that fails leaves the account and its password as they were', async () => {
    const first = byService(await accounts.createMemberAccounts(anna));
    synapse.failNext(1, 'error', { path: /reset_password/ });
    expect(await accounts.resetPassword(anna, 'synapse')).toMatchObject({ state: 'created', retriable: true, error: expect.stringContaining('500') });
    expect(synapse.passwordWorks(ANNA_MXID, first.synapse.oneTimePassword!)).toBe(true);
  });

  it('works after the services forgot the agent’s admin sessions', async () => {
    await accounts.createMemberAccounts(anna);
    synapse.revokeAllTokens();
    immich.revokeAllSessions();
    expect((await accounts.resetPassword(anna, 'synapse')).oneTimePassword).toBeDefined();
    expect((await accounts.resetPassword(anna, 'immich')).oneTimePassword).toBeDefined();
  });

  it('is refused for a member without an account', async () => {
    expect(await accounts.resetPassword(ben, 'immich')).toMatchObject({ state: 'pending', retriable: false, error: expect.any(String) });
  });
});

describe('removing a member', () => {
  it('deactivates the Matrix account and deletes the Immich user restorably; the name stays used', async () => {
    await accounts.createMemberAccounts(anna);
    expect((await accounts.removeMember(anna)).map((r) => r.state)).toEqual(['removed', 'removed']);
    expect(synapse.users.get(ANNA_MXID)).toMatchObject({ deactivated: true, erased: false });
    expect(immich.users.size).toBe(2);
    expect([...immich.users.values()].find((u) => u.email === ANNA_EMAIL)).toMatchObject({ status: 'deleted' });

    const calls = synapse.requests.length;
    expect((await accounts.removeMember(anna)).map((r) => r.state)).toEqual(['removed', 'removed']);
    expect(synapse.requests.length).toBe(calls);
    expect(byService(await accounts.createMemberAccounts(anna)).synapse).toMatchObject({ state: 'removed', error: expect.stringContaining('removed') });
  });

  it('with erase, erases the Matrix account and deletes the Immich user at once', async () => {
    await accounts.createMemberAccounts(anna);
    await accounts.removeMember(anna, { erase: true });
    expect(synapse.users.get(ANNA_MXID)).toMatchObject({ deactivated: true, erased: true });
    expect([...immich.users.values()].some((u) => u.email === ANNA_EMAIL)).toBe(false);
  });

  it('finds an account whose create answer was lost, and removes it', async () => {
    await accounts.createMemberAccounts(ben);
    immich.failNext(1, 'lose-answer', CREATE_USER);
    await accounts.createMemberAccounts(anna);
    expect((await store.load('anna', 'immich'))?.remoteId).toBeUndefined();
    expect(byService(await accounts.removeMember(anna)).immich.state).toBe('removed');
    expect(immich.activeByEmail(ANNA_EMAIL)).toBeUndefined();
  });

  it('that fails is retried as a removal', async () => {
    await accounts.createMemberAccounts(anna);
    synapse.failNext(1, 'error', { path: /deactivate/ });
    expect(byService(await accounts.removeMember(anna)).synapse).toMatchObject({ state: 'failed', retriable: true });
    expect(byService(await accounts.createMemberAccounts(anna)).synapse).toMatchObject({ state: 'failed', error: expect.stringContaining('removed') });
    expect(byService(await accounts.removeMember(anna)).synapse.state).toBe('removed');
    expect(synapse.users.get(ANNA_MXID)?.deactivated).toBe(true);
  });
});

describe('a service that is not there', () => {
  it('is unavailable, with the reason, when it is not installed: nothing is recorded', async () => {
    const demo = service({ synapse: undefined, immich: undefined });
    const results = byService(await demo.createMemberAccounts(anna));
    expect(results.synapse).toEqual({ service: 'synapse', state: 'unavailable', error: 'Memu Chat (Synapse) is not part of the installed stack' });
    expect(results.immich.state).toBe('unavailable');
    expect(store.records.size).toBe(0);
    expect((await demo.removeMember(anna)).map((r) => r.state)).toEqual(['unavailable', 'unavailable']);
  });

  it('is unavailable while it does not answer, and the member gets the account once it does', async () => {
    const port = Number(new URL(immich.url).port);
    await immich.stop();
    const down = byService(await accounts.createMemberAccounts(anna));
    expect(down.synapse.state).toBe('created');
    expect(down.immich).toMatchObject({ state: 'unavailable', error: expect.stringContaining('ECONNREFUSED') });
    expect(await store.load('anna', 'immich')).toBeUndefined();

    await immich.start(port);
    const up = byService(await accounts.createMemberAccounts(anna));
    expect(up.immich).toMatchObject({ state: 'created', attempts: 1, oneTimePassword: expect.any(String) });
  });

  it('differs from one that answers with a failure: that is recorded and retriable', async () => {
    immich.failNext(3, 'error', { path: '/api/auth/admin-sign-up' });
    const results = byService(await accounts.createMemberAccounts(anna));
    expect(results.immich).toMatchObject({ state: 'failed', retriable: true, attempts: 1 });
    expect(await store.load('anna', 'immich')).toMatchObject({ status: 'failed', mayExist: true });
  });
});

describe("the agent's admin accounts", () => {
  it("use an API key when Immich's administrator was made by someone else", async () => {
    immich.addUser('dad@example.org', 'dads-password', true);
    const refused = byService(await accounts.createMemberAccounts(anna)).immich;
    expect(refused).toMatchObject({ state: 'failed', retriable: true, error: expect.stringContaining('create an API key') });

    const withKey = service({ immich: { url: immich.url, hostname: HOST, apiKey: immich.createApiKey('dad@example.org') } });
    const created = byService(await withKey.createMemberAccounts(anna)).immich;
    expect(created).toMatchObject({ state: 'created', login: ANNA_EMAIL });
    expect(immich.passwordWorks(ANNA_EMAIL, created.oneTimePassword!)).toBe(true);
  });

  it('are made again under a new name when the records of the old one were lost', async () => {
    await accounts.createMemberAccounts(anna);
    store = createMemoryAccountStore(); // memu.db restored from before the admin was made
    const results = byService(await service().createMemberAccounts(ben));
    expect(results.synapse.state).toBe('created');
    expect((await store.loadAdmin('synapse'))?.login).toMatch(/^memu-admin-[0-9a-f]{6}$/);
  });
});
