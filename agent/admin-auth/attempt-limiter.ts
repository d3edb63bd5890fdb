import type { FamilyDb } from '../family-db/index.ts';

/**
 * Failed attempts at a secret (the claim code, a sign-in), counted in memu.db so a restart
 * does not hand a guesser a fresh allowance, under several keys at once (one for the
 * client's address, one global). Each kind of key allows `free` failures per window; after
 * that each further failure doubles the wait before the next try (1 s, 2 s, 4 s … up to
 * `maxDelayMs`), and `ceiling` failures in a window lock the key until the window ends.
 * A success clears the client's key, never the global one.
 */
export interface LimitPolicy {
  windowMs: number;
  free: number;
  maxDelayMs: number;
  ceiling: number;
}

export interface LimitKey {
  /** Which policy applies: `claim-client`, `claim-global`, `login-client` … */
  kind: string;
  key: string;
}

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface AttemptRow {
  count: number;
  last_at: number;
  window_start: number;
}

export class AttemptLimiter {
  constructor(
    private readonly db: () => FamilyDb,
    private readonly policies: Readonly<Record<string, LimitPolicy>>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether a try under all these keys may go ahead now; otherwise how long to wait. */
  check(keys: readonly LimitKey[]): LimitVerdict {
    const waitMs = Math.max(0, ...keys.map((k) => this.waitMs(k)));
    return waitMs > 0 ? { allowed: false, retryAfterSeconds: Math.ceil(waitMs / 1000) } : { allowed: true };
  }

  recordFailure(keys: readonly LimitKey[]): void {
    const now = this.now();
    this.db().transaction(() => {
      for (const k of keys) {
        const windowStart = this.windowStart(k, now);
        this.db().run(
          `INSERT INTO login_attempts (key, window_start, count, last_at) VALUES (?, ?, 1, ?)
           ON CONFLICT (key, window_start) DO UPDATE SET count = count + 1, last_at = excluded.last_at`,
          [k.key, windowStart, now],
        );
      }
      // Windows older than a week tell nothing any more.
      this.db().run('DELETE FROM login_attempts WHERE window_start < ?', [now - 7 * 24 * 3600_000]);
    });
  }

  /** A right answer: these keys start afresh. */
  clear(keys: readonly LimitKey[]): void {
    this.db().transaction(() => {
      for (const k of keys) this.db().run('DELETE FROM login_attempts WHERE key = ?', [k.key]);
    });
  }

  private policy(kind: string): LimitPolicy {
    const p = this.policies[kind];
    if (!p) throw new Error(`no rate-limit policy named ${kind}`);
    return p;
  }

  private windowStart(k: LimitKey, at: number): number {
    const { windowMs } = this.policy(k.kind);
    return at - (at % windowMs);
  }

  private waitMs(k: LimitKey): number {
    const policy = this.policy(k.kind);
    const now = this.now();
    const row = this.db().get<AttemptRow>('SELECT count, last_at, window_start FROM login_attempts WHERE key = ? AND window_start = ?', [k.key, this.windowStart(k, now)]);
    if (!row || row.count < policy.free) return 0;
    if (row.count >= policy.ceiling) return row.window_start + policy.windowMs - now;
    const delay = Math.min(policy.maxDelayMs, 1000 * 2 ** (row.count - policy.free));
    return row.last_at + delay - now;
  }
}
