/** Backups with restic: repositories, backup sets (dumps, memu.db, files, manifest), retention, integrity checks, restores. */
export { createBackupModule, backupPaths } from './backup-module.ts';
export type { BackupModule, BackupModuleOptions } from './backup-module.ts';
export { BackupRepository, initBackupRepository, openBackupRepository } from './backup-repository.ts';
export type { BackupEngineOptions, BackupTarget } from './repository.ts';
export type { BackupProgress, BackupRunRequest, BackupRunResult, DatabaseDumpSource, FileSources } from './backup-run.ts';
export type { BackupSetInfo } from './backup-sets.ts';
export { DEFAULT_RETENTION, selectSetsToForget } from './retention.ts';
export type { RetentionDecision, RetentionPolicy } from './retention.ts';
export type { IntegrityCheckResult } from './integrity-check.ts';
export type { RestoreCommand, RestoreProgress } from './restore.ts';
export { adoptBackupPassword, backupPasswordPath, ensureBackupPassword, generateBackupPassword, readBackupPassword, BACKUP_PASSWORD_BITS } from './backup-password.ts';
export * from './backup-errors.ts';
