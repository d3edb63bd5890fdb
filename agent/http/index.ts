/** The agent's HTTP server: mounts the routes each concern brings, behind the API key. */
export { createHttpModule } from './http-module.ts';
export type { HttpModule, HttpModuleOptions } from './http-module.ts';
export type { ApiKeyDigest } from './api-key.ts';
