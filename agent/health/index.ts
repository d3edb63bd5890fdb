/** The device's health: the liveness answer, the report, and the reasons each module contributes to them. */
export { createHealthModule } from './health-module.ts';
export type { HealthModule, HealthModuleOptions } from './health-module.ts';
export type { HealthBody, HealthReason, HealthReport, HealthSource, HealthStatus, ReportedCheck } from './health-report.ts';
export { healthCommand } from './health-cli.ts';
export type { CheckResult, CheckStatus, HealthCheck, Metric } from './checks/check.ts';
export { deviceHealth } from './device-health.ts';
export { parseMillidegrees } from './checks/temperature.ts';
