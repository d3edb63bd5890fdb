/** The admin's dashboard under /admin/: device, services, storage, members, remote access, account, power, audit log. */
export { createDashboardModule } from './dashboard-module.ts';
export type { DashboardModule, DashboardOptions } from './dashboard-module.ts';
export { localApiTailnet } from './tailnet.ts';
export type { LocalApiTailnetOptions, Tailnet, TailnetJoinOutcome, TailnetView } from './tailnet.ts';
export { systemctlPower } from './power.ts';
export type { PowerControl } from './power.ts';
