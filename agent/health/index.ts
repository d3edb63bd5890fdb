/** The device's health: the liveness answer, the report, and the reasons each module contributes to them. */
export { createHealthModule } from './health-module.ts';
export type { HealthModule, HealthModuleOptions } from './health-module.ts';
export type { HealthBody, HealthReason, HealthReport, HealthSource, HealthStatus, ReportedCheck } from './health-report.ts';
export { healthCommand } from './health-cli.ts';
export type { CheckResult, CheckStatus, HealthCheck, Metric } from './checks/check.ts';
export { deviceHealth } from './device-health.ts';
export { parseMillidegrees, readThermalZones } from './checks/temperature.ts';
export { readFirmwareThrottled, readUnderVoltageAlarm } from './checks/power-supply.ts';
export { bootOrderModes, BOOT_MODES, readBootloaderFacts, type BootloaderFacts } from './checks/bootloader.ts';
