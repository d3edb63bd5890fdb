/** The agent's HTTP server: mounts the routes each concern brings. */
export { createHttpModule } from './http-module.ts';
export type { HttpModule, HttpModuleOptions } from './http-module.ts';
