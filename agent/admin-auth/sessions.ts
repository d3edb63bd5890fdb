import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FamilyDb } from '../family-db/index.ts';
import type { AdminPrincipal } from '../http/index.ts';

/**
 * Admin sessions: a random 256-bit token in an httpOnly, SameSite=Strict cookie scoped to
 * /admin; memu.db keeps only its SHA-256, so reading the database gives nobody a working
 * cookie. A session ends after 12 hours without use or 30 days after sign-in, when the admin
 * signs out, or when "sign out everywhere" revokes every session of that admin. The cookie
 * is not `Secure`: the front door serves plain HTTP on the home network (the tailnet
 * encrypts the way from outside).
 */
export const SESSION_COOKIE = 'memu_session';
export const SESSION_IDLE_MS = 12 * 3600_000;
export const SESSION_MAX_MS = 30 * 24 * 3600_000;
/** last_seen_at is written at most this often, not on every request. */
const TOUCH_EVERY_MS = 60_000;

interface SessionRow {
  id_hash: string;
  username: string;
  display_name: string;
  created_at: number;
  last_seen_at: number;
  expires_at: number;
}

export interface SessionInfo {
  idHash: string;
  createdAt: number;
  lastSeenAt: number;
  userAgent: string | null;
}

export const tokenHash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

export class Sessions {
  constructor(
    private readonly db: () => FamilyDb,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts a session for `username` and sets its cookie on `reply`. */
  start(username: string, reply: FastifyReply, userAgent: string | undefined): string {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    this.db().run('INSERT INTO sessions (id_hash, username, created_at, last_seen_at, expires_at, user_agent) VALUES (?, ?, ?, ?, ?, ?)', [
      tokenHash(token),
      username,
      now,
      now,
      now + SESSION_MAX_MS,
      userAgent?.slice(0, 512) ?? null,
    ]);
    reply.setCookie(SESSION_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/admin', maxAge: SESSION_MAX_MS / 1000 });
    return tokenHash(token);
  }

  /** The admin behind the request's cookie, when the session is live; touches it. */
  adminFor(request: FastifyRequest): AdminPrincipal | undefined {
    const token = request.cookies[SESSION_COOKIE];
    if (!token || token.length > 100) return undefined;
    const now = this.now();
    const row = this.db().get<SessionRow>(
      `SELECT s.id_hash, s.username, a.display_name, s.created_at, s.last_seen_at, s.expires_at
       FROM sessions s JOIN admins a ON a.username = s.username
       WHERE s.id_hash = ? AND s.revoked_at IS NULL`,
      [tokenHash(token)],
    );
    if (!row || row.expires_at <= now || row.last_seen_at + SESSION_IDLE_MS <= now) return undefined;
    if (now - row.last_seen_at >= TOUCH_EVERY_MS) this.db().run('UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?', [now, row.id_hash]);
    return { username: row.username, displayName: row.display_name, sessionIdHash: row.id_hash };
  }

  end(idHash: string, reply: FastifyReply): void {
    this.db().run('UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL', [this.now(), idHash]);
    reply.clearCookie(SESSION_COOKIE, { path: '/admin' });
  }

  /** Every live session of `username` ends; returns how many. */
  endAll(username: string): number {
    return this.db().run('UPDATE sessions SET revoked_at = ? WHERE username = ? AND revoked_at IS NULL', [this.now(), username]).changes;
  }

  live(username: string): SessionInfo[] {
    const now = this.now();
    return this.db()
      .all<{ id_hash: string; created_at: number; last_seen_at: number; user_agent: string | null }>(
        'SELECT id_hash, created_at, last_seen_at, user_agent FROM sessions WHERE username = ? AND revoked_at IS NULL AND expires_at > ? AND last_seen_at > ? ORDER BY last_seen_at DESC',
        [username, now, now - SESSION_IDLE_MS],
      )
      .map((r) => ({ idHash: r.id_hash, createdAt: r.created_at, lastSeenAt: r.last_seen_at, userAgent: r.user_agent }));
  }
}
