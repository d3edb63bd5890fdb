/** The agent's HTTP server: mounts the routes each concern brings, behind the access rules. */
export { createHttpModule } from './http-module.ts';
export type { HttpModule, HttpModuleOptions } from './http-module.ts';
export type { AdminPrincipal, ApiKeyDigest, PageGate, RouteAccess, SessionResolver } from './access.ts';
