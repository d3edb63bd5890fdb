import type { FamilyDb } from '../family-db/index.ts';
import type { HealthSource } from '../health/index.ts';
import type { MaintenanceLock } from '../maintenance/index.ts';
import type { AgentModule } from '../module.ts';
import type { BackupDriveRoots } from './backup-drive.ts';
import type { BackupModule, BackupModuleOptions } from './backup-module.ts';
import type { BackupRepository } from './backup-repository.ts';
import type { DatabaseDumpSource } from './backup-run.ts';
import type { BackupTargetSettings, TargetInput } from './backup-settings.ts';
import type { RestoreDrillResult, ThrowawayDatabase } from './restore-drill.ts';

/**
 * The backup service's face (backup-service.ts builds it): what the agent, its API routes
 * and the dashboard call, and what they are told.
 */

export type RunTrigger = 'schedule' | 'admin' | 'api';

export interface RunProgress {
  trigger: RunTrigger;
  startedAt: string;
  targetsDone: number;
  targetsTotal: number;
  target?: { id: string; label: string };
  stage: 'starting' | 'database' | 'files' | 'retention' | 'check' | 'drill';
  /** The stack is held still (the dumps are being taken). */
  stackHeld: boolean;
  database?: string;
  bytesDone?: number;
  bytesTotal?: number;
  percent?: number;
  etaSeconds?: number;
}

export interface TargetStatus {
  id: string;
  kind: string;
  label: string;
  address: string;
  addedAt: string;
  lastSuccess?: { at: string; runId: string; bytesProcessed: number; bytesAdded: number; durationMs: number; filesProcessed: number; warnings: number };
  lastFailure?: { at: string; reason: string; message: string };
  lastCheck?: { at: string; ok: boolean; message?: string };
}

export interface BackupsStatus {
  dailyTime: string;
  /** ISO time of the next scheduled run; absent while no target is set up. */
  nextRunAt?: string;
  targets: TargetStatus[];
  running?: RunProgress;
  lastDrill?: { at: string; target: string; runId: string; ok: boolean; problems: string[]; databases: number; filesCompared: number };
  /** Why nothing can run now (restic missing, the settings file damaged). */
  problem?: string;
}

export interface BackupServiceOptions extends BackupModuleOptions {
  lock: MaintenanceLock;
  /** The reconciler's hold (StackModule.runExclusive). */
  stack: { runExclusive<T>(reason: string, fn: () => Promise<T>): Promise<T> };
  /** The databases to dump, asked at each run (postgresContainerDumps on the device). */
  databases: () => Promise<DatabaseDumpSource[]>;
  familyDb: () => FamilyDb | undefined;
  host: () => Promise<string>;
  /** Recorded in each set's manifest. */
  stackVersions: () => Record<string, string>;
  /** The schedule starts after this (first boot's provisioning); without it, at start. */
  scheduleFrom?: Promise<void>;
  /** How often the schedule looks at the clock; a minute on the device. */
  tickMs?: number;
  /**
   * The first look after start: a run missed while the box was off waits this long (5
   * minutes on the device), so the stack's database is up again before it is dumped.
   */
  firstTickDelayMs?: number;
  driveRoots?: BackupDriveRoots;
  /** The restore drill's throwaway PostgreSQL (dockerThrowawayPostgres on the device). */
  throwawayDatabase?: () => Promise<ThrowawayDatabase>;
  /** Files a drill restores and compares (default 50). */
  drillSampleSize?: number;
  now?: () => number;
}

export interface BackupService extends AgentModule {
  readonly engine: BackupModule;
  status(): Promise<BackupsStatus>;
  /** Starts a run in the background; refuses with MaintenanceBusyError while a backup, update or restore runs. Resolves when it ends. */
  runNow(trigger: RunTrigger): { done: Promise<void> };
  /** Runs what the schedule says is due now (the schedule's tick; tests). */
  runDue(): Promise<void>;
  addTarget(input: TargetInput): Promise<BackupTargetSettings>;
  removeTarget(id: string): Promise<boolean>;
  setDailyTime(time: string): Promise<void>;
  /** The open repository of a target (mounting the USB drive first). */
  repository(id: string): Promise<BackupRepository>;
  /** Restores one file or folder of a set into a new folder under RESTORE_ROOT; never overwrites. */
  restoreItem(targetId: string, runId: string, path: string, into: string): Promise<{ directory: string; files: number; bytes: number }>;
  /** Restores the newest set of the first target into throwaway space and compares (weekly after the backup; the page's button). */
  runDrill(): Promise<RestoreDrillResult>;
  /** Reads the settings and state from the data partition again (after a restore onto a new box brought the old box's). */
  reload(): Promise<void>;
  /** Formats a drive the admin named (and confirmed) as the backup drive; refuses a drive in use. */
  prepareDrive(disk: string): Promise<void>;
  readonly health: HealthSource;
  readonly passwordFile: string;
  readonly dataDir: string;
}
