import { request } from 'node:http';

/**
 * A client for tailscaled's LocalAPI: HTTP over its unix socket, Host
 * `local-tailscaled.sock`, paths under /localapi/v0/. tailscaled rejects requests that
 * carry Origin or Referer (a browser must never drive it), so none are sent.
 *
 * The subset used here follows what `tailscale up` does (cmd/tailscale/cli/up.go):
 *   GET  /localapi/v0/status             ipnstate.Status (BackendState, HaveNodeKey, AuthURL,
 *                                        Self, CurrentTailnet, Health)
 *   POST /localapi/v0/start              body ipn.Options {"AuthKey", "UpdatePrefs"}; 204
 *   POST /localapi/v0/login-interactive  starts the login (with an auth key: no browser); 204
 */
export const LOCAL_API_HOST = 'local-tailscaled.sock';

export interface TailscaleStatus {
  /** NoState, NeedsLogin, NeedsMachineAuth, Stopped, Starting, Running. */
  BackendState: string;
  HaveNodeKey?: boolean;
  AuthURL?: string;
  Self?: { HostName?: string; DNSName?: string; TailscaleIPs?: string[] | null } | null;
  CurrentTailnet?: { Name?: string; MagicDNSSuffix?: string; MagicDNSEnabled?: boolean } | null;
  Health?: string[] | null;
}

/** The prefs a `tailscale up` on Linux would send with our flags (ipn.Prefs; omitted fields are zero values). */
export interface TailscalePrefs {
  ControlURL: string;
  WantRunning: boolean;
  Hostname: string;
  /** --accept-dns (MagicDNS). */
  CorpDNS: boolean;
  /** --accept-routes. */
  RouteAll: boolean;
  /** preftype.NetfilterMode: 0 off, 1 nodivert, 2 on (the Linux default). */
  NetfilterMode: number;
}

export class LocalApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'LocalApiError';
  }
}

export class TailscaleLocalApi {
  constructor(
    private readonly socketPath: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async status(): Promise<TailscaleStatus> {
    const body = await this.call('GET', '/localapi/v0/status');
    try {
      return JSON.parse(body) as TailscaleStatus;
    } catch {
      throw new LocalApiError('tailscaled answered /localapi/v0/status with something that is not JSON');
    }
  }

  async start(options: { AuthKey?: string; UpdatePrefs?: TailscalePrefs }): Promise<void> {
    await this.call('POST', '/localapi/v0/start', JSON.stringify(options));
  }

  async startLoginInteractive(): Promise<void> {
    await this.call('POST', '/localapi/v0/login-interactive');
  }

  /** Logs the node out of its tailnet, as `tailscale logout` does (cmd/tailscale/cli/logout.go). */
  async logout(): Promise<void> {
    await this.call('POST', '/localapi/v0/logout');
  }

  private call(method: string, path: string, body?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          method,
          path,
          headers: {
            Host: LOCAL_API_HOST,
            ...(body !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {}),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(text);
            // tailscaled's error bodies are short JSON or text messages, never our secrets.
            else reject(new LocalApiError(`tailscaled answered ${method} ${path} with HTTP ${status}: ${oneLine(text)}`, status));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new LocalApiError(`tailscaled did not answer ${method} ${path} within ${this.timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof LocalApiError) reject(err);
        else reject(new LocalApiError(`cannot reach tailscaled at ${this.socketPath}: ${err.code ?? err.message}`));
      });
      req.end(body);
    });
  }
}

function oneLine(text: string): string {
  let message = text.trim();
  try {
    const parsed = JSON.parse(message) as { error?: string };
    if (typeof parsed.error === 'string') message = parsed.error;
  } catch {
    // plain text
  }
  return message.replace(/\s*\n\s*/g, '; ').slice(0, 300) || 'no message';
}
