import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { DEFAULT_CONTROL_URL, joinTailnet } from './join.ts';
import { TailscaleLocalApi, type TailscaleStatus } from './local-api.ts';

/** tailscaled as the setup wizard and the dashboard drive it. */
export interface TailscaleControl {
  status(): Promise<TailscaleStatus>;
  joinWithAuthKey(authKey: string): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Starts a browser sign-in: status() then carries the AuthURL to show. */
  startInteractiveLogin(): Promise<void>;
}

/** The control of the tailscaled at `socketPath`, or undefined when no tailscaled runs (a stack without it). */
export async function tailscaleControl(opts: { socketPath: string; hostname: () => Promise<string>; log: Logger }): Promise<TailscaleControl | undefined> {
  if (!(await access(opts.socketPath).then(() => true, () => false))) return undefined;
  const api = new TailscaleLocalApi(opts.socketPath, 5_000);
  return {
    status: () => api.status(),
    async joinWithAuthKey(authKey) {
      const result = await joinTailnet({ socketPath: opts.socketPath, authKey, hostname: await opts.hostname(), socketWaitMs: 5_000, joinTimeoutMs: 60_000, log: opts.log });
      if (result.state === 'failed') return { ok: false, reason: result.reason };
      return { ok: true };
    },
    async startInteractiveLogin() {
      await api.start({ UpdatePrefs: { ControlURL: DEFAULT_CONTROL_URL, WantRunning: true, Hostname: await opts.hostname(), CorpDNS: true, RouteAll: false, NetfilterMode: 2 } });
      await api.startLoginInteractive();
    },
  };
}
