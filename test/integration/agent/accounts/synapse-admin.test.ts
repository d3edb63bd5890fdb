/**
 * The Synapse client over real HTTP against the FAKE Synapse (test/helpers/fake-synapse.ts),
 * which answers as Synapse 1.157 does, refusals included: what the agent sends is what
 * Synapse accepts, and what Synapse refuses comes back as its errcode.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registrationMac, SynapseAdminClient, SynapseApiError } from '../../../../agent/accounts/synapse-admin.ts';
import { FakeSynapse } from '../../../helpers/fake-synapse.ts';

const SECRET = 'registration-shared-secret-for-tests';
let synapse: FakeSynapse;
let client: SynapseAdminClient;

beforeEach(async () => {
  synapse = new FakeSynapse({ sharedSecret: SECRET, serverName: 'memu-hub.home.arpa', nonceTimeoutMs: 300 });
  client = new SynapseAdminClient(await synapse.start(), 5_000);
});
afterEach(() => synapse.stop());

async function refusal(promise: Promise<unknown>): Promise<{ status?: number; errcode: string; error: string }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SynapseApiError);
  const { status, errcode, error } = err as SynapseApiError;
  return { status, errcode, error };
}

async function rawPost(path: string, body: unknown): Promise<{ status: number; body: { errcode?: string; error?: string } }> {
  const res = await fetch(`${synapse.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { errcode?: string; error?: string } };
}

async function signedBody(username: string, password = 'pw', secret = SECRET) {
  const { nonce } = (await (await fetch(`${synapse.url}/_synapse/admin/v1/register`)).json()) as { nonce: string };
  return { nonce, username, displayname: username, password, admin: false, mac: registrationMac(secret, nonce, username, password, false) };
}

describe('shared-secret registration', () => {
  it('registers with a fresh nonce and a correct MAC, and answers as documented', async () => {
    const admin = await client.register(SECRET, { username: 'memu-admin', displayName: 'Memu', password: 'admin-pw', admin: true, deviceName: 'Memu agent' });
    expect(admin).toMatchObject({ user_id: '@memu-admin:memu-hub.home.arpa', home_server: 'memu-hub.home.arpa', access_token: expect.any(String), device_id: expect.any(String) });
    expect(synapse.users.get(admin.user_id)).toMatchObject({ admin: true, displayname: 'Memu' });

    const member = await client.register(SECRET, { username: 'anna', displayName: 'Anna Müller', password: 'anna-pw', admin: false, inhibitLogin: true });
    expect(member).toEqual({ user_id: '@anna:memu-hub.home.arpa', home_server: 'memu-hub.home.arpa' });
    expect(synapse.tokenCount('@anna:memu-hub.home.arpa')).toBe(0); // no session nobody holds
    expect(synapse.passwordWorks('@anna:memu-hub.home.arpa', 'anna-pw')).toBe(true);
  });

  it('spends a nonce on first use, even on a refused request, and lets it expire', async () => {
    const body = await signedBody('anna');
    expect((await rawPost('/_synapse/admin/v1/register', { ...body, mac: 'wrong' })).status).toBe(403);
    expect(await rawPost('/_synapse/admin/v1/register', body)).toEqual({ status: 400, body: { errcode: 'M_UNKNOWN', error: 'unrecognised nonce' } });

    const late = await signedBody('anna');
    await new Promise((r) => setTimeout(r, 400));
    expect((await rawPost('/_synapse/admin/v1/register', late)).body.error).toBe('unrecognised nonce');
    expect(synapse.users.size).toBe(0);
  });

  it('refuses a MAC made with another secret', async () => {
    expect(await refusal(client.register('not-the-secret', { username: 'anna', displayName: 'Anna', password: 'pw', admin: false }))).toEqual({
      status: 403,
      errcode: 'M_UNKNOWN',
      error: 'HMAC incorrect',
    });
  });

  it('refuses usernames as Synapse does, and a taken one whatever its case', async () => {
    const cases: [string, string, string][] = [
      ['anna!', 'M_INVALID_USERNAME', "User ID can only contain characters a-z, 0-9, or '=_-./+'"],
      ['_anna', 'M_INVALID_USERNAME', 'User ID may not begin with _'],
      ['', 'M_INVALID_USERNAME', 'User ID cannot be empty'],
      ['1234', 'M_INVALID_USERNAME', 'Numeric user IDs are reserved for guest users.'],
    ];
    for (const [username, errcode, error] of cases) {
      expect(await refusal(client.register(SECRET, { username, displayName: 'x', password: 'pw', admin: false })), username).toEqual({ status: 400, errcode, error });
    }
    await client.register(SECRET, { username: 'Anna', displayName: 'Anna', password: 'pw', admin: false });
    expect(synapse.users.has('@anna:memu-hub.home.arpa')).toBe(true); // lower-cased
    expect(await refusal(client.register(SECRET, { username: 'anna', displayName: 'Anna', password: 'pw', admin: false }))).toEqual({
      status: 400,
      errcode: 'M_USER_IN_USE',
      error: 'User ID already taken.',
    });
  });

  it('is refused when the server has no shared secret', async () => {
    const closed = new FakeSynapse();
    try {
      const c = new SynapseAdminClient(await closed.start());
      expect((await refusal(c.register('x', { username: 'anna', displayName: 'Anna', password: 'pw', admin: false }))).error).toBe(
        'Shared secret registration is not enabled',
      );
    } finally {
      await closed.stop();
    }
  });

  it('reports missing fields as Synapse words them', async () => {
    const { nonce } = (await (await fetch(`${synapse.url}/_synapse/admin/v1/register`)).json()) as { nonce: string };
    expect((await rawPost('/_synapse/admin/v1/register', { nonce, username: 'anna' })).body).toEqual({ errcode: 'M_BAD_JSON', error: 'password must be specified' });
    expect((await rawPost('/_synapse/admin/v1/register', {})).body).toEqual({ errcode: 'M_BAD_JSON', error: 'nonce must be specified' });
    const res = await fetch(`${synapse.url}/_synapse/admin/v1/register`, { method: 'POST', body: 'nonce=1' });
    expect(await res.json()).toEqual({ errcode: 'M_NOT_JSON', error: 'Content not JSON.' });
  });
});

describe('the admin API', () => {
  let adminToken: string;
  const anna = '@anna:memu-hub.home.arpa';

  beforeEach(async () => {
    adminToken = (await client.register(SECRET, { username: 'memu-admin', displayName: 'Memu', password: 'admin-pw', admin: true })).access_token!;
    await client.register(SECRET, { username: 'anna', displayName: 'Anna', password: 'first', admin: false, inhibitLogin: true });
  });

  it("needs a server admin's token", async () => {
    const annaToken = (await client.login('anna', 'first')).access_token;
    expect(await refusal(client.queryUser('', anna))).toMatchObject({ status: 401, errcode: 'M_MISSING_TOKEN' });
    expect(await refusal(client.queryUser('syt_bogus', anna))).toEqual({ status: 401, errcode: 'M_UNKNOWN_TOKEN', error: 'Invalid access token passed.' });
    expect(await refusal(client.resetPassword(annaToken, anna, 'x', false))).toEqual({ status: 403, errcode: 'M_FORBIDDEN', error: 'You are not a server admin' });
    const res = await fetch(`${synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(anna)}`);
    expect(await res.json()).toEqual({ errcode: 'M_MISSING_TOKEN', error: 'Missing access token' });
  });

  it('queries an account, and answers none for a user it does not have', async () => {
    expect(await client.queryUser(adminToken, anna)).toMatchObject({ name: anna, displayname: 'Anna', admin: false, deactivated: false, erased: false });
    expect(await client.queryUser(adminToken, '@nobody:memu-hub.home.arpa')).toBeUndefined();
    expect((await refusal(client.queryUser(adminToken, '@anna:elsewhere.org'))).error).toBe('Can only look up local users');
  });

  it('resets a password and signs the member out everywhere', async () => {
    await client.login('anna', 'first');
    await client.login('anna', 'first');
    expect(synapse.tokenCount(anna)).toBe(2);
    await client.resetPassword(adminToken, anna, 'second', true);
    expect(synapse.tokenCount(anna)).toBe(0);
    expect(await refusal(client.login('anna', 'first'))).toEqual({ status: 403, errcode: 'M_FORBIDDEN', error: 'Invalid username or password' });
    expect((await client.login('anna', 'second')).user_id).toBe(anna);
    expect(await refusal(client.resetPassword(adminToken, '@nobody:memu-hub.home.arpa', 'x', true))).toEqual({
      status: 404,
      errcode: 'M_NOT_FOUND',
      error: 'Unknown user',
    });
  });

  it('deactivates an account for good, erasing on request', async () => {
    await client.deactivate(adminToken, anna, true);
    expect(await client.queryUser(adminToken, anna)).toMatchObject({ deactivated: true, erased: true });
    expect(await refusal(client.login('anna', 'first'))).toMatchObject({ status: 403, errcode: 'M_USER_DEACTIVATED' });
    await client.deactivate(adminToken, anna, false); // again: still fine
    expect(await refusal(client.deactivate(adminToken, '@nobody:memu-hub.home.arpa', false))).toEqual({
      status: 404,
      errcode: 'M_NOT_FOUND',
      error: 'User not found',
    });
    expect(await refusal(client.register(SECRET, { username: 'anna', displayName: 'Anna', password: 'pw', admin: false }))).toMatchObject({
      errcode: 'M_USER_IN_USE',
    });
  });
});

describe('health', () => {
  it('answers while Synapse runs, and says why not once it is gone', async () => {
    expect(await client.health(1_000)).toEqual({ ok: true });
    await synapse.stop();
    const probe = await client.health(1_000);
    expect(probe).toMatchObject({ ok: false, reason: expect.stringMatching(/nothing answers at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/) });
  });
});
