/** The device's health: the liveness answer, the report, and the reasons each module contributes to them. */
export { createHealthModule } from './health-module.ts';
export type { HealthBody, HealthModule, HealthModuleOptions } from './health-module.ts';
export type { HealthReason, HealthReport, HealthSource, HealthStatus } from './health-report.ts';
