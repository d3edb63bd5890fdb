import type { FamilyDb } from '../family-db/index.ts';
import { recordAudit } from '../audit-log/index.ts';

export interface Member {
  id: number;
  username: string;
  displayName: string;
  createdAt: number;
  removedAt: number | null;
}

interface MemberRow {
  id: number;
  username: string;
  display_name: string;
  created_at: number;
  removed_at: number | null;
}

const toMember = (r: MemberRow): Member => ({ id: r.id, username: r.username, displayName: r.display_name, createdAt: r.created_at, removedAt: r.removed_at });

export function listMembers(db: FamilyDb, opts: { includeRemoved?: boolean } = {}): Member[] {
  const where = opts.includeRemoved ? '' : 'WHERE removed_at IS NULL';
  return db.all<MemberRow>(`SELECT id, username, display_name, created_at, removed_at FROM members ${where} ORDER BY created_at, id`).map(toMember);
}

export function findMember(db: FamilyDb, username: string): Member | undefined {
  const row = db.get<MemberRow>('SELECT id, username, display_name, created_at, removed_at FROM members WHERE username = ?', [username]);
  return row && toMember(row);
}

/** Records a new member (with the audit entry, in one transaction); their accounts come after. */
export function insertMember(db: FamilyDb, member: { username: string; displayName: string }, actor: string, at = Date.now()): Member {
  return db.transaction(() => {
    const { lastInsertRowid } = db.run('INSERT INTO members (username, display_name, created_at) VALUES (?, ?, ?)', [member.username, member.displayName, at]);
    recordAudit(db, actor, 'member.add', { username: member.username }, at);
    return { id: Number(lastInsertRowid), username: member.username, displayName: member.displayName, createdAt: at, removedAt: null };
  });
}

export function markMemberRemoved(db: FamilyDb, username: string, actor: string, at = Date.now()): void {
  db.transaction(() => {
    db.run('UPDATE members SET removed_at = ? WHERE username = ? AND removed_at IS NULL', [at, username]);
    recordAudit(db, actor, 'member.remove', { username }, at);
  });
}
