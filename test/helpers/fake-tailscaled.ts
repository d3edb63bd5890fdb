import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * A FAKE tailscaled LocalAPI (Tailscale's servers are not reachable here) on a unix
 * socket, following the documented contract the agent relies on:
 *   - HTTP over the socket; requests with Origin or Referer are refused (403), as is a
 *     Host other than `local-tailscaled.sock`;
 *   - GET /localapi/v0/status → ipnstate.Status JSON (BackendState, HaveNodeKey,
 *     AuthURL, Self, CurrentTailnet, Health);
 *   - POST /localapi/v0/start with ipn.Options {AuthKey, UpdatePrefs} → 204;
 *   - POST /localapi/v0/login-interactive → 204; with a good auth key the backend goes
 *     Starting → Running (or NeedsMachineAuth), with a rejected key it stays NeedsLogin
 *     and reports the error in Health; without a key (a browser login) status carries
 *     an AuthURL until completeBrowserLogin() plays the person signing in there;
 *   - POST /localapi/v0/logout → 204; the node needs a new login.
 * It records every request and can be told to fail a path or reject keys.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface FakeTailscaledOptions {
  socketPath: string;
  tailnet?: string;
  /** Keys that control "rejects". */
  rejectKeys?: string[];
  /** Require device approval after login. */
  needsApproval?: boolean;
  /** Delay between login and Running (ms). */
  loginDelayMs?: number;
}

export class FakeTailscaled {
  readonly requests: RecordedRequest[] = [];
  backendState = 'NeedsLogin';
  haveNodeKey = false;
  prefs: Record<string, unknown> | undefined;
  authKeysUsed: string[] = [];
  private pendingKey: string | undefined;
  private authUrl = '';
  private health: string[] = [];
  private failures = new Map<string, { status: number; message: string }>();
  private server: Server | undefined;

  constructor(readonly options: FakeTailscaledOptions) {}

  /** Someone signed in at the AuthURL of a browser login: the node joins. */
  completeBrowserLogin(): void {
    this.haveNodeKey = true;
    this.authUrl = '';
    this.backendState = 'Running';
  }

  /** Makes `path` answer `status` with `message` until cleared (undefined). */
  failPath(path: string, failure: { status: number; message: string } | undefined): void {
    if (failure) this.failures.set(path, failure);
    else this.failures.delete(path);
  }

  async start(): Promise<void> {
    await mkdir(dirname(this.options.socketPath), { recursive: true });
    await rm(this.options.socketPath, { force: true });
    this.server = createServer((req, res) => {
      void this.handle(req).then(({ status, body }) => {
        res.writeHead(status, body === undefined ? {} : { 'Content-Type': 'application/json' });
        res.end(body);
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.socketPath, resolve);
    });
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    await rm(this.options.socketPath, { force: true });
    this.server = undefined;
  }

  private async handle(req: IncomingMessage): Promise<{ status: number; body?: string }> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = (req.url ?? '').split('?')[0]!;
    this.requests.push({ method: req.method ?? '', path, headers: { ...req.headers }, body });
    if (req.headers.origin !== undefined || req.headers.referer !== undefined) return error(403, 'origin/referer not allowed');
    if (req.headers.host !== 'local-tailscaled.sock') return error(403, 'invalid localapi request host');
    const failure = this.failures.get(path);
    if (failure) return error(failure.status, failure.message);
    switch (`${req.method} ${path}`) {
      case 'GET /localapi/v0/status':
        return { status: 200, body: JSON.stringify(this.status()) };
      case 'POST /localapi/v0/start': {
        let options: { AuthKey?: string; UpdatePrefs?: Record<string, unknown> };
        try {
          options = JSON.parse(body) as typeof options;
        } catch {
          return error(400, 'invalid JSON body');
        }
        if (options.UpdatePrefs) this.prefs = options.UpdatePrefs;
        this.pendingKey = options.AuthKey || undefined;
        if (this.backendState === 'NoState') this.backendState = 'NeedsLogin';
        return { status: 204 };
      }
      case 'POST /localapi/v0/login-interactive': {
        const key = this.pendingKey;
        if (!key) {
          // A browser login: tailscaled asks the control server for a login URL and shows
          // it in status as AuthURL until someone signs in there (completeBrowserLogin()).
          this.authUrl = `https://login.tailscale.com/a/${Math.random().toString(16).slice(2, 14)}`;
          this.backendState = 'NeedsLogin';
          return { status: 204 };
        }
        this.authKeysUsed.push(key);
        if (this.options.rejectKeys?.includes(key)) {
          this.health = ['invalid key: unable to validate API key'];
          this.backendState = 'NeedsLogin';
          return { status: 204 };
        }
        this.haveNodeKey = true;
        this.backendState = 'Starting';
        setTimeout(() => {
          this.backendState = this.options.needsApproval ? 'NeedsMachineAuth' : 'Running';
        }, this.options.loginDelayMs ?? 50);
        return { status: 204 };
      }
      case 'POST /localapi/v0/logout':
        this.backendState = 'NeedsLogin';
        this.haveNodeKey = false;
        this.authUrl = '';
        return { status: 204 };
      default:
        return error(404, `${path} not found`);
    }
  }

  private status() {
    const running = this.backendState === 'Running';
    const hostname = typeof this.prefs?.Hostname === 'string' ? this.prefs.Hostname : 'localhost';
    const tailnet = this.options.tailnet ?? 'example.ts.net';
    return {
      Version: '1.102.5-fake',
      BackendState: this.backendState,
      HaveNodeKey: this.haveNodeKey,
      AuthURL: running ? '' : this.authUrl,
      TailscaleIPs: running ? ['100.64.0.7'] : null,
      Self: { HostName: hostname, DNSName: running ? `${hostname}.${tailnet}.` : '', TailscaleIPs: running ? ['100.64.0.7'] : null },
      Health: this.health,
      CurrentTailnet: running ? { Name: tailnet, MagicDNSSuffix: tailnet, MagicDNSEnabled: true } : null,
    };
  }
}

function error(status: number, message: string): { status: number; body: string } {
  return { status, body: JSON.stringify({ error: message }) };
}
