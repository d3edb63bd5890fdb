/**
 * The Immich client over real HTTP against the FAKE Immich (test/helpers/fake-immich.ts),
 * which answers as Immich 2.7.5 does, refusals included.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImmichAdminClient, ImmichApiError, type ImmichAuth } from '../../../../agent/accounts/immich-admin.ts';
import { FakeImmich } from '../../../helpers/fake-immich.ts';

const ADMIN = { email: 'memu-admin@memu-hub.home.arpa', password: 'admin-pw', name: 'Memu' };
let immich: FakeImmich;
let client: ImmichAdminClient;

beforeEach(async () => {
  immich = new FakeImmich();
  client = new ImmichAdminClient(await immich.start(), 5_000);
});
afterEach(() => immich.stop());

async function refusal(promise: Promise<unknown>): Promise<{ status?: number; messages: string[] }> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImmichApiError);
  return { status: (err as ImmichApiError).status, messages: (err as ImmichApiError).messages };
}

describe('the first administrator', () => {
  it('signs up once, then signs in', async () => {
    expect(await client.signUpAdmin(ADMIN)).toMatchObject({ email: ADMIN.email, isAdmin: true, deletedAt: null, status: 'active' });
    expect(await refusal(client.signUpAdmin({ ...ADMIN, email: 'other@memu-hub.home.arpa' }))).toEqual({ status: 400, messages: ['The server already has an admin'] });
    expect(await client.login({ email: ADMIN.email.toUpperCase(), password: ADMIN.password })).toMatchObject({ accessToken: expect.any(String), isAdmin: true });
    expect(await refusal(client.login({ email: ADMIN.email, password: 'wrong' }))).toEqual({ status: 401, messages: ['Incorrect email or password'] });
  });

  it('is validated as Immich validates its DTOs', async () => {
    expect(await refusal(client.signUpAdmin({ email: 'not-an-address', password: 'pw', name: '' }))).toEqual({
      status: 400,
      messages: ['email must be an email', 'name should not be empty'],
    });
  });
});

describe('users, as the administrator', () => {
  let auth: ImmichAuth;

  beforeEach(async () => {
    await client.signUpAdmin(ADMIN);
    auth = { accessToken: (await client.login(ADMIN)).accessToken };
  });

  it('need an administrator', async () => {
    expect(await refusal(client.listUsers({ accessToken: '' }))).toEqual({ status: 401, messages: ['Authentication required'] });
    expect(await refusal(client.listUsers({ accessToken: 'bogus' }))).toEqual({ status: 401, messages: ['Invalid user token'] });
    expect(await refusal(client.listUsers({ apiKey: 'bogus' }))).toEqual({ status: 401, messages: ['Invalid API key'] });
    await client.createUser(auth, { email: 'anna@memu-hub.home.arpa', name: 'Anna', password: 'pw', shouldChangePassword: false });
    const anna = { accessToken: (await client.login({ email: 'anna@memu-hub.home.arpa', password: 'pw' })).accessToken };
    expect(await refusal(client.listUsers(anna))).toEqual({ status: 403, messages: ['Forbidden'] });
    expect(await client.listUsers({ apiKey: immich.createApiKey(ADMIN.email) })).toHaveLength(2);
  });

  it('are created once per e-mail address, and must change the first password', async () => {
    const anna = await client.createUser(auth, { email: 'anna@memu-hub.home.arpa', name: 'Anna', password: 'first', shouldChangePassword: true });
    expect(anna).toMatchObject({ email: 'anna@memu-hub.home.arpa', name: 'Anna', isAdmin: false, shouldChangePassword: true });
    expect(await refusal(client.createUser(auth, { email: 'Anna@memu-hub.home.arpa', name: 'Anna', password: 'x', shouldChangePassword: true }))).toEqual({
      status: 400,
      messages: ['User exists'],
    });
    expect((await client.login({ email: 'anna@memu-hub.home.arpa', password: 'first' })).shouldChangePassword).toBe(true);
    expect(await refusal(client.createUser(auth, { email: 'bad address', name: 'B', password: 'x', shouldChangePassword: true }))).toEqual({
      status: 400,
      messages: ['email must be an email'],
    });
  });

  it('get a new password', async () => {
    const anna = await client.createUser(auth, { email: 'anna@memu-hub.home.arpa', name: 'Anna', password: 'first', shouldChangePassword: false });
    await client.updateUser(auth, anna.id, { password: 'second', shouldChangePassword: true });
    expect(immich.passwordWorks('anna@memu-hub.home.arpa', 'second')).toBe(true);
    expect(immich.passwordWorks('anna@memu-hub.home.arpa', 'first')).toBe(false);
    expect(await refusal(client.updateUser(auth, 'not-a-uuid', { password: 'x' }))).toEqual({ status: 400, messages: ['id must be a UUID'] });
    expect(await refusal(client.updateUser(auth, '8d3c6a0e-4c1b-4f57-9a55-6f2f4f1f9a11', { password: 'x' }))).toEqual({ status: 400, messages: ['User not found'] });
  });

  it('are deleted restorably by default, at once with force; a trashed address cannot be reused', async () => {
    const anna = await client.createUser(auth, { email: 'anna@memu-hub.home.arpa', name: 'Anna', password: 'pw', shouldChangePassword: false });
    expect(await client.deleteUser(auth, anna.id, { force: false })).toMatchObject({ status: 'deleted', deletedAt: expect.any(String) });
    expect((await client.listUsers(auth)).map((u) => u.email)).toEqual([ADMIN.email]);
    expect((await client.listUsers(auth, { withDeleted: true })).map((u) => u.email)).toContain('anna@memu-hub.home.arpa');
    expect(await refusal(client.deleteUser(auth, anna.id, { force: false }))).toEqual({ status: 400, messages: ['User not found'] });
    const again = await client.createUser(auth, { email: 'anna@memu-hub.home.arpa', name: 'Anna', password: 'pw', shouldChangePassword: false }).catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 500, outcomeUnknown: true });

    const ben = await client.createUser(auth, { email: 'ben@memu-hub.home.arpa', name: 'Ben', password: 'pw', shouldChangePassword: false });
    expect(await client.deleteUser(auth, ben.id, { force: true })).toMatchObject({ status: 'removing' });
    expect((await client.listUsers(auth, { withDeleted: true })).map((u) => u.email)).not.toContain('ben@memu-hub.home.arpa');
    const admin = (await client.listUsers(auth)).find((u) => u.isAdmin)!;
    expect(await refusal(client.deleteUser(auth, admin.id, { force: false }))).toEqual({ status: 403, messages: ['Cannot delete your own account'] });
  });
});

describe('health', () => {
  it('answers pong while Immich runs, and says why not once it is gone', async () => {
    expect(await client.health(1_000)).toEqual({ ok: true });
    await immich.stop();
    expect(await client.health(1_000)).toMatchObject({ ok: false, reason: expect.stringContaining('ECONNREFUSED') });
  });
});
