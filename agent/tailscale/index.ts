/** Joining the tailnet through tailscaled's LocalAPI. */
export { joinTailnet } from './join.ts';
export { tailscaleControl, type TailscaleControl } from './control.ts';
export { LocalApiError, TailscaleLocalApi } from './local-api.ts';
export type { TailscaleStatus } from './local-api.ts';
