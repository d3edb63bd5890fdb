/** The device's maintenance lock: backups, restores and updates take it, so they never run at once. */
export { createMaintenanceLock, MaintenanceBusyError } from './maintenance-lock.ts';
export type { MaintenanceHolder, MaintenanceKind, MaintenanceLock } from './maintenance-lock.ts';
