import type { Logger } from 'pino';
import type { AttemptLimiter, Sessions } from '../admin-auth/index.ts';
import type { StoredDeviceSettings } from '../device-settings/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import type { FamilyMembersModule } from '../family-members/index.ts';
import type { HealthModule } from '../health/index.ts';
import type { StackModule } from '../stack/index.ts';
import type { Notices } from './dashboard-page.ts';
import type { DeviceFacts } from './device-facts.ts';
import type { FamilyFormats } from './format.ts';
import type { PowerControl } from './power.ts';
import type { ServiceRestarts } from './service-restarts.ts';
import type { createStorageUse, StorageUse } from './storage-use.ts';
import type { Tailnet } from './tailnet.ts';
import type { TailnetJoins } from './tailnet-joins.ts';

export interface DashboardOptions {
  db: () => FamilyDb;
  /** The data partition's mount point: device settings, and the directories the storage card measures. */
  dataDir: string;
  /** The admin-auth module's sessions (the account page lists and ends them). */
  sessions: Sessions;
  /** The admin-auth module's limiter: a wrong current password counts like a wrong sign-in. */
  limiter?: AttemptLimiter;
  members: Pick<FamilyMembersModule, 'list' | 'add' | 'retry' | 'resetPassword' | 'remove'>;
  stack: Pick<StackModule, 'status' | 'restartService'>;
  health: Pick<HealthModule, 'report'>;
  /** tailscaled: localApiTailnet() on the device. */
  tailnet: Tailnet;
  /** systemctlPower() on the device; tests inject a fake. */
  power: PowerControl;
  /** Where /sys and /proc are read from; `/` on the device. */
  deviceRoot?: string;
  /** How the storage card measures the data partition's directories; `du` by default. */
  measureStorage?: Parameters<typeof createStorageUse>[0]['measure'];
  now?: () => number;
}

/** What every section's routes share. */
export interface DashboardContext {
  opts: DashboardOptions;
  log: Logger;
  now: () => number;
  notices: Notices;
  restarts: ServiceRestarts;
  joins: TailnetJoins;
  deviceFacts: () => Promise<DeviceFacts>;
  storageUse: () => StorageUse;
  settings: () => Promise<StoredDeviceSettings | undefined>;
  formats: () => Promise<FamilyFormats>;
  /** Writes an audit entry in its own transaction (for actions without a memu.db effect). */
  audit: (actor: string, action: string, detail?: Record<string, unknown>) => void;
}
