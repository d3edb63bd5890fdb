/** Joining the tailnet through tailscaled's LocalAPI. */
export { joinTailnet } from './join.ts';
