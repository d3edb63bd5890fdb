import type { FamilyDb } from '../family-db/index.ts';

/**
 * What the admin (or the agent on its own) did, in memu.db's append-only audit_log: every
 * admin action is written here in the same transaction as its effect, and the dashboard
 * shows it. Details never hold a secret.
 */
export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  action: string;
  detail: Record<string, unknown>;
}

/** `actor`: an admin's username, or `system`. `action`: lowercase words with dots, e.g. `member.add`. */
export function recordAudit(db: FamilyDb, actor: string, action: string, detail: Record<string, unknown> = {}, at = Date.now()): void {
  db.run('INSERT INTO audit_log (at, actor, action, detail) VALUES (?, ?, ?, ?)', [at, actor, action, JSON.stringify(detail)]);
}

export function recentAudit(db: FamilyDb, limit = 100): AuditEntry[] {
  return db
    .all<{ id: number; at: number; actor: string; action: string; detail: string }>('SELECT id, at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT ?', [limit])
    .map((r) => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> }));
}
