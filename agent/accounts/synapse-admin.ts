import { createHmac } from 'node:crypto';
import { excerpt, JsonServiceClient, ServiceCallError, type JsonRequest } from '../../shared/http/http-json.ts';

/**
 * A client for the parts of Synapse's HTTP API the agent uses (Synapse 1.157, checked
 * against element-hq/synapse: docs/admin_api/register_api.md, docs/admin_api/
 * user_admin_api.md and synapse/rest/admin/users.py):
 *
 *   GET  /health                                  200 "OK" (synapse/rest/health.py)
 *   GET  /_synapse/admin/v1/register              {nonce}; a nonce is valid for 60 s, once
 *   POST /_synapse/admin/v1/register              {nonce, username, displayname, password, admin, mac}
 *                                                 → {user_id, home_server, access_token, device_id};
 *                                                 `inhibit_login: true` → {user_id, home_server}, no device
 *   POST /_matrix/client/v3/login                 m.login.password → {user_id, access_token, device_id, home_server}
 *   GET  /_synapse/admin/v2/users/<user_id>       the account (404 M_NOT_FOUND)
 *   POST /_synapse/admin/v1/reset_password/<id>   {new_password, logout_devices} → {}
 *   POST /_synapse/admin/v1/deactivate/<id>       {erase} → {id_server_unbind_result}
 *
 * Errors are `{errcode, error}` with the HTTP status. The admin APIs take a server admin's
 * access token as `Authorization: Bearer`.
 */
export interface SynapseRegistration {
  user_id: string;
  home_server: string;
  access_token?: string;
  device_id?: string;
}

export interface SynapseLogin {
  user_id: string;
  access_token: string;
  device_id: string;
}

/** GET /_synapse/admin/v2/users/<user_id>, the fields the agent reads. */
export interface SynapseUser {
  name: string;
  displayname: string | null;
  admin: boolean;
  deactivated: boolean;
  erased: boolean;
}

export class SynapseApiError extends ServiceCallError {
  constructor(
    what: string,
    status: number,
    readonly errcode: string,
    readonly error: string,
    body: unknown,
  ) {
    super(`${what}: Synapse answered HTTP ${status} ${errcode}: ${error}`, 'answer', status, body);
    this.name = 'SynapseApiError';
  }
}

/**
 * The registration MAC: hex HMAC-SHA1 keyed with the shared secret over
 * `nonce NUL username NUL password NUL ("admin" | "notadmin")`, as the server computes it
 * (UTF-8 throughout).
 */
export function registrationMac(sharedSecret: string, nonce: string, username: string, password: string, admin: boolean): string {
  return createHmac('sha1', Buffer.from(sharedSecret, 'utf8'))
    .update(Buffer.from(nonce, 'utf8'))
    .update('\x00')
    .update(Buffer.from(username, 'utf8'))
    .update('\x00')
    .update(Buffer.from(password, 'utf8'))
    .update('\x00')
    .update(admin ? 'admin' : 'notadmin')
    .digest('hex');
}

export interface RegisterRequest {
  username: string;
  displayName: string;
  password: string;
  admin: boolean;
  /** No access token and no device for the new account (nobody would hold them). */
  inhibitLogin?: boolean;
  /** The device name Synapse shows for the access token it hands back. */
  deviceName?: string;
}

export class SynapseAdminClient extends JsonServiceClient {
  constructor(baseUrl: string, timeoutMs = 10_000) {
    super('Synapse', baseUrl, '/health', timeoutMs);
  }

  /** Shared-secret registration: a fresh nonce, then the signed request. */
  async register(sharedSecret: string, req: RegisterRequest): Promise<SynapseRegistration> {
    const { nonce } = (await this.call({ method: 'GET', path: '/_synapse/admin/v1/register' })) as { nonce: string };
    if (typeof nonce !== 'string') throw new ServiceCallError('Synapse answered GET /_synapse/admin/v1/register without a nonce', 'answer', 200);
    return (await this.call({
      method: 'POST',
      path: '/_synapse/admin/v1/register',
      body: {
        nonce,
        username: req.username,
        displayname: req.displayName,
        password: req.password,
        admin: req.admin,
        mac: registrationMac(sharedSecret, nonce, req.username, req.password, req.admin),
        ...(req.inhibitLogin ? { inhibit_login: true } : {}),
        ...(req.deviceName ? { initial_device_display_name: req.deviceName } : {}),
      },
    })) as SynapseRegistration;
  }

  /** Password login (client-server API), for a fresh admin token when the stored one is gone. */
  async login(user: string, password: string, deviceName?: string): Promise<SynapseLogin> {
    return (await this.call({
      method: 'POST',
      path: '/_matrix/client/v3/login',
      body: {
        type: 'm.login.password',
        identifier: { type: 'm.id.user', user },
        password,
        ...(deviceName ? { initial_device_display_name: deviceName } : {}),
      },
    })) as SynapseLogin;
  }

  /** The account, or undefined when Synapse has no such user. */
  async queryUser(adminToken: string, userId: string): Promise<SynapseUser | undefined> {
    try {
      return (await this.call({ method: 'GET', path: `/_synapse/admin/v2/users/${encodeURIComponent(userId)}` }, adminToken)) as SynapseUser;
    } catch (err) {
      if (err instanceof SynapseApiError && err.status === 404 && err.errcode === 'M_NOT_FOUND') return undefined;
      throw err;
    }
  }

  async resetPassword(adminToken: string, userId: string, newPassword: string, logoutDevices: boolean): Promise<void> {
    await this.call(
      {
        method: 'POST',
        path: `/_synapse/admin/v1/reset_password/${encodeURIComponent(userId)}`,
        body: { new_password: newPassword, logout_devices: logoutDevices },
      },
      adminToken,
    );
  }

  async deactivate(adminToken: string, userId: string, erase: boolean): Promise<void> {
    await this.call({ method: 'POST', path: `/_synapse/admin/v1/deactivate/${encodeURIComponent(userId)}`, body: { erase } }, adminToken);
  }

  private async call(req: Omit<JsonRequest, 'timeoutMs' | 'headers'>, token?: string): Promise<unknown> {
    const answer = await this.send(req, token ? { authorization: `Bearer ${token}` } : undefined);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    const what = `Synapse ${req.method} ${req.path.split('/').slice(0, 5).join('/')}`;
    const body = answer.body as { errcode?: unknown; error?: unknown } | undefined;
    if (typeof body?.errcode === 'string') {
      throw new SynapseApiError(what, answer.status, body.errcode, typeof body.error === 'string' ? body.error : '', answer.body);
    }
    throw new ServiceCallError(`${what}: HTTP ${answer.status}: ${excerpt(answer.body)}`, 'answer', answer.status, answer.body);
  }
}
