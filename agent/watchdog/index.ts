/** The agent's systemd watchdog: pings while the event loop and every module are alive. */
export { createWatchdogModule, systemdWatchdogUsec } from './watchdog-module.ts';
export type { WatchdogModule, WatchdogModuleOptions } from './watchdog-module.ts';
