import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { LocalApiError, TailscaleLocalApi, type TailscalePrefs, type TailscaleStatus } from './local-api.ts';

/**
 * Joins the tailnet with an auth key through tailscaled's LocalAPI, the way
 * `tailscale up --auth-key=…` does (cmd/tailscale/cli/up.go): read status; when not
 * Running, POST start with {AuthKey, UpdatePrefs}; when the node has no key yet, POST
 * login-interactive (with an auth key this logs in without a browser); then wait for
 * BackendState Running.
 *
 * Why the LocalAPI and not `tailscale up --auth-key=file:PATH`: the tailscale CLI is
 * only inside the memu_tailscale container (the host root has no tailscale package),
 * the agent has no Docker exec path it should use for this, and over the socket the key
 * never appears in a process list or a file on the root slot either.
 */
export const DEFAULT_CONTROL_URL = 'https://controlplane.tailscale.com';

export type TailnetJoinResult =
  | { state: 'joined'; tailnet?: string; dnsName?: string; alreadyRunning: boolean }
  /** The key was accepted, but the tailnet requires an admin to approve new devices. */
  | { state: 'needs-approval'; tailnet?: string }
  | { state: 'failed'; reason: string; backendState?: string };

export interface TailnetJoinOptions {
  socketPath: string;
  authKey: string;
  hostname: string;
  controlUrl?: string;
  /** How long to wait for tailscaled's socket to answer (it starts with the stack). Default 120 s. */
  socketWaitMs?: number;
  /** How long to wait for Running after start. Default 90 s. */
  joinTimeoutMs?: number;
  pollIntervalMs?: number;
  log: Logger;
}

export async function joinTailnet(opts: TailnetJoinOptions): Promise<TailnetJoinResult> {
  const api = new TailscaleLocalApi(opts.socketPath);
  const poll = opts.pollIntervalMs ?? 1000;
  const redact = (text: string) => text.split(opts.authKey).join('[auth key]');
  try {
    let status = await waitForDaemon(api, opts.socketPath, opts.socketWaitMs ?? 120_000, poll);
    if (status.BackendState === 'Running') {
      opts.log.info({ tailnet: status.CurrentTailnet?.Name }, 'already on a tailnet; the auth key is not needed');
      return { state: 'joined', tailnet: status.CurrentTailnet?.Name, dnsName: status.Self?.DNSName, alreadyRunning: true };
    }
    const prefs: TailscalePrefs = {
      ControlURL: opts.controlUrl ?? DEFAULT_CONTROL_URL,
      WantRunning: true,
      Hostname: opts.hostname,
      CorpDNS: true,
      RouteAll: false,
      NetfilterMode: 2,
    };
    await api.start({ AuthKey: opts.authKey, UpdatePrefs: prefs });
    if (!status.HaveNodeKey) await api.startLoginInteractive();
    const deadline = Date.now() + (opts.joinTimeoutMs ?? 90_000);
    for (;;) {
      status = await api.status();
      if (status.BackendState === 'Running') {
        opts.log.info({ tailnet: status.CurrentTailnet?.Name, dnsName: status.Self?.DNSName }, 'joined the tailnet');
        return { state: 'joined', tailnet: status.CurrentTailnet?.Name, dnsName: status.Self?.DNSName, alreadyRunning: false };
      }
      if (status.BackendState === 'NeedsMachineAuth') {
        opts.log.warn('the tailnet requires an admin to approve this device in the Tailscale admin console');
        return { state: 'needs-approval', tailnet: status.CurrentTailnet?.Name };
      }
      if (Date.now() >= deadline) {
        const health = (status.Health ?? []).join('; ');
        return {
          state: 'failed',
          backendState: status.BackendState,
          reason: redact(
            `tailscaled did not reach Running within ${Math.round((opts.joinTimeoutMs ?? 90_000) / 1000)} s (state ${status.BackendState}${health ? `: ${health}` : ''}); ` +
              'check the auth key (expired or already used?) and the network, then join from the setup wizard',
          ),
        };
      }
      await sleep(poll);
    }
  } catch (err) {
    const message = err instanceof LocalApiError ? err.message : `unexpected error: ${(err as Error).message}`;
    return { state: 'failed', reason: redact(message) };
  }
}

/** tailscaled runs in the stack: wait for its socket to appear and answer. */
async function waitForDaemon(api: TailscaleLocalApi, socketPath: string, waitMs: number, poll: number): Promise<TailscaleStatus> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await access(socketPath);
      return await api.status();
    } catch (err) {
      if (Date.now() >= deadline) {
        if (err instanceof LocalApiError) throw err;
        throw new LocalApiError(`tailscaled's socket ${socketPath} did not appear within ${Math.round(waitMs / 1000)} s (is the memu_tailscale service running?)`);
      }
      await sleep(poll);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
