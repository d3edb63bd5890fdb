import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SESSION_COOKIE, SESSION_IDLE_MS, SESSION_MAX_MS, Sessions } from '../../../../agent/admin-auth/index.ts';
import { openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });
let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** A tiny app: /start signs `sam` in, /who says who the cookie belongs to. */
async function setup(now: { t: number }): Promise<{ db: FamilyDb; sessions: Sessions; cookie: () => Promise<string>; who: (cookie: string) => Promise<string> }> {
  const db = openFamilyDb(join(await tempDir('memu-sessions-'), 'memu.db'), log);
  db.run("INSERT INTO admins (username, display_name, password_hash, created_at, password_changed_at) VALUES ('sam', 'Sam', ?, 0, 0)", [`$scrypt$ln=15,r=8,p=1$${'a'.repeat(22)}$${'b'.repeat(43)}`]);
  const sessions = new Sessions(() => db, () => now.t);
  app = Fastify();
  await app.register(fastifyCookie);
  app.get('/start', async (_request, reply) => {
    sessions.start('sam', reply, 'test browser');
    return 'ok';
  });
  app.get('/who', async (request) => sessions.adminFor(request)?.username ?? 'nobody');
  return {
    db,
    sessions,
    cookie: async () => {
      const res = await app!.inject({ method: 'GET', url: '/start' });
      const set = String(res.headers['set-cookie']);
      expect(set).toMatch(/HttpOnly/);
      expect(set).toMatch(/SameSite=Strict/);
      expect(set).toMatch(/Path=\/admin/);
      return set.split(';')[0]!;
    },
    who: async (cookie) => (await app!.inject({ method: 'GET', url: '/who', headers: { cookie } })).body,
  };
}

describe('admin sessions', () => {
  it('keeps only the SHA-256 of the token in memu.db', async () => {
    const now = { t: 1_000 };
    const s = await setup(now);
    const cookie = await s.cookie();
    const token = cookie.slice(`${SESSION_COOKIE}=`.length);
    const rows = s.db.all<{ id_hash: string }>('SELECT id_hash FROM sessions');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.id_hash).not.toContain(token);
    expect(await s.who(cookie)).toBe('sam');
  });

  it('ends after 12 hours unused, and a use within them keeps it going', async () => {
    const now = { t: 1_000 };
    const s = await setup(now);
    const cookie = await s.cookie();
    now.t += SESSION_IDLE_MS - 60_000;
    expect(await s.who(cookie)).toBe('sam');
    now.t += SESSION_IDLE_MS - 60_000;
    expect(await s.who(cookie)).toBe('sam');
    now.t += SESSION_IDLE_MS + 1;
    expect(await s.who(cookie)).toBe('nobody');
  });

  it('ends 30 days after sign-in however much it is used', async () => {
    const now = { t: 1_000 };
    const s = await setup(now);
    const cookie = await s.cookie();
    while (now.t < 1_000 + SESSION_MAX_MS - 3_600_000) {
      now.t += 3_600_000;
      expect(await s.who(cookie)).toBe('sam');
    }
    now.t = 1_000 + SESSION_MAX_MS;
    expect(await s.who(cookie)).toBe('nobody');
  });

  it('ends at sign-out everywhere, and a made-up or too long cookie is nobody', async () => {
    const now = { t: 1_000 };
    const s = await setup(now);
    const phone = await s.cookie();
    const laptop = await s.cookie();
    expect(s.sessions.live('sam')).toHaveLength(2);
    expect(s.sessions.endAll('sam')).toBe(2);
    expect(await s.who(phone)).toBe('nobody');
    expect(await s.who(laptop)).toBe('nobody');
    expect(await s.who(`${SESSION_COOKIE}=made-up`)).toBe('nobody');
    expect(await s.who(`${SESSION_COOKIE}=${'x'.repeat(500)}`)).toBe('nobody');
  });
});
