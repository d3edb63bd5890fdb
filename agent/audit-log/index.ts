/** The admin's actions, as memu.db's append-only audit log keeps them. */
export { recentAudit, recordAudit } from './audit-log.ts';
export type { AuditEntry } from './audit-log.ts';
