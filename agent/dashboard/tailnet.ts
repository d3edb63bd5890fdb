import type { Logger } from 'pino';
import { joinTailnet, TailscaleLocalApi } from '../tailscale/index.ts';

/** What the Tailscale page shows: tailscaled's state, in the words of its status answer. */
export interface TailnetView {
  /** NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running. */
  backendState: string;
  ips: string[];
  /** Without the trailing dot. */
  dnsName?: string;
  tailnet?: string;
  health: string[];
}

export type TailnetJoinOutcome = Awaited<ReturnType<typeof joinTailnet>>;

/** The dashboard's hold on tailscaled; `localApiTailnet` on the device, a fake in tests. */
export interface Tailnet {
  status(): Promise<TailnetView>;
  /** Joins with an auth key; the key is never logged or kept. */
  join(authKey: string): Promise<TailnetJoinOutcome>;
  /** Logs the device out of its tailnet (`tailscale logout`): it must be joined again with a new key. */
  leave(): Promise<void>;
}

export interface LocalApiTailnetOptions {
  /** tailscaled's LocalAPI socket, /var/run/tailscale/tailscaled.sock on the device. */
  socketPath: string;
  /** The device's hostname, the name it gets on the tailnet. */
  hostname: () => Promise<string>;
  log: Logger;
  /** How long a status or logout call may take. Default 5 s. */
  timeoutMs?: number;
  /** How long a join may take to reach Running. Default 90 s (joinTailnet's). */
  joinTimeoutMs?: number;
}

/** tailscaled through its LocalAPI (agent/tailscale), as the dashboard uses it. */
export function localApiTailnet(opts: LocalApiTailnetOptions): Tailnet {
  const timeoutMs = opts.timeoutMs ?? 5_000;
  const api = new TailscaleLocalApi(opts.socketPath, timeoutMs);
  return {
    async status() {
      const s = await api.status();
      return {
        backendState: s.BackendState,
        ips: s.Self?.TailscaleIPs ?? [],
        dnsName: s.Self?.DNSName?.replace(/\.$/, '') || undefined,
        tailnet: s.CurrentTailnet?.Name || undefined,
        health: s.Health ?? [],
      };
    },
    async join(authKey) {
      return joinTailnet({ socketPath: opts.socketPath, authKey, hostname: await opts.hostname(), log: opts.log, socketWaitMs: timeoutMs, joinTimeoutMs: opts.joinTimeoutMs });
    },
    leave: () => api.logout(),
  };
}
