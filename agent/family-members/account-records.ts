import { join } from 'node:path';
import type { AccountService, AccountState, AccountStore, ServiceAdminRecord } from '../accounts/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import { readJsonIfPresent, writeJsonDurably } from '../../shared/files/durable-files.ts';

/**
 * The accounts module's records in memu.db: one service_accounts row per member and
 * service (the state in columns the dashboard lists, the whole state in `record`). The
 * agent's own admin credentials on each service are secrets and live beside the device's
 * other secrets (`<dataDir>/secrets/service-admins.json`, 0600), not in memu.db.
 */
export function memuDbAccountStore(db: () => FamilyDb, dataDir: string, now: () => number = Date.now): AccountStore {
  const adminsPath = join(dataDir, 'secrets', 'service-admins.json');
  const readAdmins = async () => ((await readJsonIfPresent(adminsPath)) ?? {}) as Partial<Record<AccountService, ServiceAdminRecord>>;
  const memberId = (username: string) => {
    const row = db().get<{ id: number }>('SELECT id FROM members WHERE username = ?', [username]);
    if (!row) throw new Error(`no family member named ${username} in memu.db`);
    return row.id;
  };
  return {
    async load(username, service) {
      const row = db().get<{ record: string }>(
        'SELECT sa.record FROM service_accounts sa JOIN members m ON m.id = sa.member_id WHERE m.username = ? AND sa.service = ?',
        [username, service],
      );
      return row ? (JSON.parse(row.record) as AccountState) : undefined;
    },
    async save(username, service, state) {
      const id = memberId(username);
      // The columns keep memu.db's constraints: a created account has its ID on the service, a failure its reason.
      db().run(
        `INSERT INTO service_accounts (member_id, service, state, external_id, last_error, attempts, record, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (member_id, service) DO UPDATE SET state = excluded.state, external_id = excluded.external_id,
           last_error = excluded.last_error, attempts = excluded.attempts, record = excluded.record, updated_at = excluded.updated_at`,
        [id, service, state.status, state.remoteId ?? null, state.lastError?.message.slice(0, 2000) ?? null, state.attempts, JSON.stringify(state), now()],
      );
    },
    async loadAdmin(service) {
      return (await readAdmins())[service];
    },
    async saveAdmin(service, record) {
      await writeJsonDurably(adminsPath, { ...(await readAdmins()), [service]: record }, 0o600);
    },
  };
}
