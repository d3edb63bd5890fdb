/** The device's health: /healthz, and the reasons each module contributes to it. */
export { createHealthModule } from './health-module.ts';
export type { HealthBody, HealthModule, HealthModuleOptions } from './health-module.ts';
export type { HealthReason, HealthReport, HealthSource, HealthStatus } from './health-report.ts';
