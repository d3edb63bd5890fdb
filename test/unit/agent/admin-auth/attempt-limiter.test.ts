import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AttemptLimiter, LIMIT_POLICIES } from '../../../../agent/admin-auth/index.ts';
import { openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });

async function limiter(now: { t: number }): Promise<{ limiter: AttemptLimiter; db: FamilyDb; path: string }> {
  const path = join(await tempDir('memu-limiter-'), 'memu.db');
  const db = openFamilyDb(path, log);
  return { limiter: new AttemptLimiter(() => db, LIMIT_POLICIES, () => now.t), db, path };
}

const client = (ip: string) => ({ kind: 'claim-client', key: `claim:ip:${ip}` });
const global = { kind: 'claim-global', key: 'claim:global' };

describe('AttemptLimiter (memu.db counters, growing delays)', () => {
  it('allows 5 free failures, then doubles the wait after each further one', async () => {
    const now = { t: 1_000_000 };
    const { limiter: l } = await limiter(now);
    for (let i = 0; i < 5; i++) {
      expect(l.check([client('a')])).toEqual({ allowed: true });
      l.recordFailure([client('a')]);
    }
    expect(l.check([client('a')])).toEqual({ allowed: false, retryAfterSeconds: 1 });
    now.t += 1000;
    expect(l.check([client('a')])).toEqual({ allowed: true });
    l.recordFailure([client('a')]);
    expect(l.check([client('a')])).toEqual({ allowed: false, retryAfterSeconds: 2 });
    now.t += 2000;
    l.recordFailure([client('a')]);
    expect(l.check([client('a')])).toEqual({ allowed: false, retryAfterSeconds: 4 });
    // Another address is not slowed by the first one's failures.
    expect(l.check([client('b')])).toEqual({ allowed: true });
  });

  it('locks everyone out once all clients together reach the global ceiling, until the window ends', async () => {
    const now = { t: 6_000_000 }; // the start of a 10-minute window
    const { limiter: l } = await limiter(now);
    for (let i = 0; i < 20; i++) l.recordFailure([client(`10.0.0.${i}`), global]);
    const verdict = l.check([client('10.0.0.99'), global]);
    expect(verdict).toEqual({ allowed: false, retryAfterSeconds: 600 });
    now.t += 600_000;
    expect(l.check([client('10.0.0.99'), global])).toEqual({ allowed: true });
  });

  it('keeps its counts across a restart of the agent (a new limiter on the same memu.db)', async () => {
    const now = { t: 1_000_000 };
    const { limiter: l, db, path } = await limiter(now);
    for (let i = 0; i < 6; i++) l.recordFailure([client('a')]);
    db.close();
    const reopened = openFamilyDb(path, log);
    const again = new AttemptLimiter(() => reopened, LIMIT_POLICIES, () => now.t);
    expect(again.check([client('a')]).allowed).toBe(false);
    reopened.close();
  });

  it("a right answer clears the client's key and never the global one", async () => {
    const now = { t: 1_000_000 };
    const { limiter: l, db } = await limiter(now);
    for (let i = 0; i < 7; i++) l.recordFailure([client('a'), global]);
    l.clear([client('a')]);
    expect(l.check([client('a')])).toEqual({ allowed: true });
    expect(db.get<{ count: number }>('SELECT count FROM login_attempts WHERE key = ?', ['claim:global'])?.count).toBe(7);
  });
});
