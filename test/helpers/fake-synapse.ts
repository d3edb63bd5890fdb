import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A FAKE Synapse (no homeserver can run here) serving, over real HTTP, exactly the
 * endpoints the agent uses, with the validation and error answers of Synapse 1.157
 * (element-hq/synapse: synapse/rest/admin/users.py, synapse/handlers/register.py,
 * synapse/api/auth/, synapse/rest/health.py; docs/admin_api/register_api.md and
 * user_admin_api.md):
 *
 *   GET  /health                                 200 "OK" (text/plain)
 *   GET  /_synapse/admin/v1/register             {nonce}: 128 hex digits, valid once, for 60 s
 *   POST /_synapse/admin/v1/register             shared-secret registration, checked in Synapse's order:
 *        400 M_UNKNOWN "Shared secret registration is not enabled"; 400 M_NOT_JSON / M_BAD_JSON;
 *        400 M_BAD_JSON "nonce must be specified"; 400 M_UNKNOWN "unrecognised nonce" (the nonce
 *        is spent even when the request fails later); 400 M_BAD_JSON "username/password/mac must
 *        be specified"; 400 M_UNKNOWN "Invalid username"/"Invalid password"; 403 M_UNKNOWN
 *        "HMAC incorrect"; then the username (lower-cased) as check_username does: 400
 *        M_INVALID_USERNAME (characters outside a-z 0-9 =_-./+, empty, leading "_", all digits,
 *        user ID over 255), 400 M_USER_IN_USE "User ID already taken." (case-insensitive).
 *        → {user_id, home_server, access_token, device_id}; `inhibit_login` → no token, no device
 *   POST /_matrix/client/v3/login                m.login.password; 403 M_FORBIDDEN "Invalid username or
 *                                                password"; 403 M_USER_DEACTIVATED
 *   GET  /_synapse/admin/v2/users/<user_id>      404 M_NOT_FOUND "User not found"
 *   POST /_synapse/admin/v1/reset_password/<id>  {new_password, logout_devices (default true)} → {};
 *                                                400 M_MISSING_PARAM; 404 M_NOT_FOUND "Unknown user"
 *   POST /_synapse/admin/v1/deactivate/<id>      {erase} → {id_server_unbind_result: "success"};
 *                                                404 M_NOT_FOUND "User not found"
 *
 * Admin APIs need a server admin's token (Authorization: Bearer or ?access_token=): 401
 * M_MISSING_TOKEN "Missing access token", 401 M_UNKNOWN_TOKEN "Invalid access token
 * passed.", 403 M_FORBIDDEN "You are not a server admin". Anything else: 404
 * M_UNRECOGNIZED "Unrecognized request".
 *
 * FakeHttpService, below, is the part both fakes share (fake-immich.ts extends it): the
 * server, a record of every request, and faults for retry tests.
 */

export interface RecordedRequest {
  method: string;
  /** The raw path, without the query. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface FakeAnswer {
  status: number;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as text/plain instead of `body`. */
  text?: string;
  headers?: Record<string, string>;
}

/**
 * What the next matching requests meet instead of a normal answer:
 *  - `error`: the service's own 500 answer, and the request has no effect;
 *  - `hang`: no answer at all (the connection stays open until the client gives up);
 *  - `lose-answer`: the request is carried out, then the connection is cut before the answer.
 */
export type FaultMode = 'error' | 'hang' | 'lose-answer';

export interface FaultMatch {
  method?: string;
  /** Exact raw path, or a pattern over it. */
  path?: string | RegExp;
}

export abstract class FakeHttpService {
  readonly requests: RecordedRequest[] = [];
  private faults: { mode: FaultMode; match: FaultMatch; remaining: number }[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private baseUrl = '';

  /** http://127.0.0.1:PORT once started. */
  get url(): string {
    return this.baseUrl;
  }

  /** The next `count` requests matching `match` (all, when omitted) meet `mode`. */
  failNext(count: number, mode: FaultMode, match: FaultMatch = {}): void {
    this.faults.push({ mode, match, remaining: count });
  }

  clearFaults(): void {
    this.faults = [];
  }

  async start(port = 0): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.baseUrl;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  protected abstract route(req: RecordedRequest): FakeAnswer | Promise<FakeAnswer>;
  /** The service's answer to an internal failure. */
  protected abstract internalError(): FakeAnswer;

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    const request: RecordedRequest = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: { ...req.headers },
      body: Buffer.concat(chunks).toString('utf8'),
    };
    this.requests.push(request);
    const fault = this.takeFault(request);
    if (fault === 'hang') return;
    let answer: FakeAnswer;
    try {
      answer = fault === 'error' ? this.internalError() : await this.route(request);
    } catch {
      answer = this.internalError();
    }
    if (fault === 'lose-answer') {
      req.socket.destroy();
      return;
    }
    const payload = answer.text ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
    res.writeHead(answer.status, {
      'content-type': answer.text !== undefined ? 'text/plain' : 'application/json',
      ...answer.headers,
    });
    res.end(payload);
  }

  private takeFault(req: RecordedRequest): FaultMode | undefined {
    const fault = this.faults.find(
      (f) =>
        f.remaining > 0 &&
        (!f.match.method || f.match.method === req.method) &&
        (!f.match.path || (typeof f.match.path === 'string' ? f.match.path === req.path : f.match.path.test(req.path))),
    );
    if (!fault) return undefined;
    fault.remaining--;
    return fault.mode;
  }
}

/** Parses a JSON object body, or says why not. */
export function jsonObject(body: string, allowEmpty = false): { ok: true; value: Record<string, unknown> } | { ok: false; problem: 'not-json' | 'not-object' } {
  if (allowEmpty && body.trim() === '') return { ok: true, value: {} };
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { ok: false, problem: 'not-json' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problem: 'not-object' };
  return { ok: true, value: value as Record<string, unknown> };
}

export interface FakeSynapseUser {
  userId: string;
  displayname: string | null;
  /** The fake keeps passwords as given; Synapse keeps a bcrypt hash. Null when deactivated. */
  password: string | null;
  admin: boolean;
  deactivated: boolean;
  erased: boolean;
  creationTs: number;
}

export interface FakeSynapseOptions {
  /** registration_shared_secret; without one, shared-secret registration is refused. */
  sharedSecret?: string;
  serverName?: string;
  /** How long a nonce stays valid (Synapse: 60 s). */
  nonceTimeoutMs?: number;
}

const MXID_LOCALPART = /^[a-z0-9._=\-/+]*$/;

export class FakeSynapse extends FakeHttpService {
  readonly users = new Map<string, FakeSynapseUser>();
  readonly serverName: string;
  private readonly tokens = new Map<string, { userId: string; deviceId: string }>();
  private readonly nonces = new Map<string, number>();

  constructor(private readonly options: FakeSynapseOptions = {}) {
    super();
    this.serverName = options.serverName ?? 'memu-hub.home.arpa';
  }

  /** Whether `password` signs in to `userId` (what the member's app would do). */
  passwordWorks(userId: string, password: string): boolean {
    const user = this.users.get(userId);
    return !!user?.password && !user.deactivated && user.password === password;
  }

  /** Access tokens Synapse holds for `userId` (sessions and devices). */
  tokenCount(userId: string): number {
    return [...this.tokens.values()].filter((t) => t.userId === userId).length;
  }

  /** Adds an account directly (as another admin or a previous installation would have). */
  addUser(localpart: string, password: string, admin = false): string {
    const userId = `@${localpart}:${this.serverName}`;
    this.users.set(userId, { userId, displayname: localpart, password, admin, deactivated: false, erased: false, creationTs: Math.floor(Date.now() / 1000) });
    return userId;
  }

  /** A new access token for `userId`, as a login would give. */
  issueToken(userId: string): string {
    const token = `syt_${randomBytes(12).toString('base64url')}`;
    this.tokens.set(token, { userId, deviceId: randomBytes(5).toString('hex').toUpperCase() });
    return token;
  }

  /** Forgets every access token (as if they had expired or been revoked). */
  revokeAllTokens(): void {
    this.tokens.clear();
  }

  protected internalError(): FakeAnswer {
    return error(500, 'M_UNKNOWN', 'Internal server error');
  }

  protected route(req: RecordedRequest): FakeAnswer {
    const { method, path } = req;
    if (path === '/health') return method === 'GET' ? { status: 200, text: 'OK' } : unrecognized();
    if (path === '/_synapse/admin/v1/register') {
      if (method === 'GET') return this.nonce();
      if (method === 'POST') return this.register(req);
    }
    if ((path === '/_matrix/client/v3/login' || path === '/_matrix/client/r0/login') && method === 'POST') return this.login(req);
    let m = /^\/_synapse\/admin\/v2\/users\/([^/]*)$/.exec(path);
    if (m && method === 'GET') return this.asAdmin(req, () => this.queryUser(decodeURIComponent(m![1]!)));
    m = /^\/_synapse\/admin\/v1\/reset_password\/([^/]*)$/.exec(path);
    if (m && method === 'POST') return this.asAdmin(req, (requester) => this.resetPassword(requester, decodeURIComponent(m![1]!), req.body));
    m = /^\/_synapse\/admin\/v1\/deactivate\/([^/]*)$/.exec(path);
    if (m && method === 'POST') return this.asAdmin(req, () => this.deactivate(decodeURIComponent(m![1]!), req.body));
    return unrecognized();
  }

  private nonce(): FakeAnswer {
    this.clearOldNonces();
    const nonce = randomBytes(64).toString('hex');
    this.nonces.set(nonce, Date.now());
    return { status: 200, body: { nonce } };
  }

  private clearOldNonces(): void {
    const timeout = this.options.nonceTimeoutMs ?? 60_000;
    for (const [nonce, issued] of this.nonces) if (Date.now() - issued > timeout) this.nonces.delete(nonce);
  }

  private register(req: RecordedRequest): FakeAnswer {
    this.clearOldNonces();
    const secret = this.options.sharedSecret;
    if (!secret) return error(400, 'M_UNKNOWN', 'Shared secret registration is not enabled');
    const parsed = jsonObject(req.body);
    if (!parsed.ok) return notJson(parsed.problem);
    const body = parsed.value;
    if (!('nonce' in body)) return error(400, 'M_BAD_JSON', 'nonce must be specified');
    const nonce = body.nonce;
    if (typeof nonce !== 'string' || !this.nonces.has(nonce)) return error(400, 'M_UNKNOWN', 'unrecognised nonce');
    this.nonces.delete(nonce); // spent, even if what follows is refused
    if (!('username' in body)) return error(400, 'M_BAD_JSON', 'username must be specified');
    const username = body.username;
    if (typeof username !== 'string' || username.length > 512 || username.includes('\x00')) return error(400, 'M_UNKNOWN', 'Invalid username');
    if (!('password' in body)) return error(400, 'M_BAD_JSON', 'password must be specified');
    const password = body.password;
    if (typeof password !== 'string' || password.length > 512 || password.includes('\x00')) return error(400, 'M_UNKNOWN', 'Invalid password');
    const userType = body.user_type;
    if (userType !== undefined && userType !== null && userType !== 'bot' && userType !== 'support') return error(400, 'M_UNKNOWN', 'Invalid user type');
    if (!('mac' in body)) return error(400, 'M_BAD_JSON', 'mac must be specified');
    const mac = createHmac('sha1', Buffer.from(secret, 'utf8'))
      .update(`${nonce}\x00${username}\x00${password}\x00${body.admin ? 'admin' : 'notadmin'}${userType ? `\x00${userType}` : ''}`, 'utf8')
      .digest('hex');
    const got = Buffer.from(typeof body.mac === 'string' ? body.mac : '', 'ascii');
    if (got.length !== mac.length || !timingSafeEqual(got, Buffer.from(mac, 'ascii'))) return error(403, 'M_UNKNOWN', 'HMAC incorrect');
    if (body.refresh_token !== undefined && typeof body.refresh_token !== 'boolean') return error(400, 'M_UNKNOWN', 'refresh_token must be a boolean');

    const localpart = username.toLowerCase();
    const problem = this.checkUsername(localpart);
    if (problem) return problem;
    const userId = `@${localpart}:${this.serverName}`;
    this.users.set(userId, {
      userId,
      displayname: typeof body.displayname === 'string' ? body.displayname : localpart,
      password,
      admin: !!body.admin,
      deactivated: false,
      erased: false,
      creationTs: Math.floor(Date.now() / 1000),
    });
    const result: Record<string, unknown> = { user_id: userId, home_server: this.serverName };
    if (!body.inhibit_login) {
      const token = this.issueToken(userId);
      result.access_token = token;
      result.device_id = this.tokens.get(token)!.deviceId;
    }
    return { status: 200, body: result };
  }

  /** synapse/handlers/register.py check_username, for a registration by an admin. */
  private checkUsername(localpart: string): FakeAnswer | undefined {
    if (!MXID_LOCALPART.test(localpart)) return error(400, 'M_INVALID_USERNAME', "User ID can only contain characters a-z, 0-9, or '=_-./+'");
    if (!localpart) return error(400, 'M_INVALID_USERNAME', 'User ID cannot be empty');
    if (localpart.startsWith('_')) return error(400, 'M_INVALID_USERNAME', 'User ID may not begin with _');
    const userId = `@${localpart}:${this.serverName}`;
    if (userId.length > 255) return error(400, 'M_INVALID_USERNAME', 'User ID may not be longer than 255 characters');
    if ([...this.users.keys()].some((id) => id.toLowerCase() === userId.toLowerCase())) return error(400, 'M_USER_IN_USE', 'User ID already taken.');
    if (/^\d+$/.test(localpart)) return error(400, 'M_INVALID_USERNAME', 'Numeric user IDs are reserved for guest users.');
    return undefined;
  }

  private login(req: RecordedRequest): FakeAnswer {
    const parsed = jsonObject(req.body);
    if (!parsed.ok) return notJson(parsed.problem);
    const body = parsed.value;
    if (body.type !== 'm.login.password') return error(400, 'M_UNKNOWN', 'Unknown login type');
    const identifier = body.identifier as { type?: unknown; user?: unknown } | undefined;
    const user = identifier?.type === 'm.id.user' ? identifier.user : body.user;
    if (typeof user !== 'string') return error(400, 'M_INVALID_PARAM', 'Invalid user in identifier');
    const userId = user.startsWith('@') ? user : `@${user.toLowerCase()}:${this.serverName}`;
    const account = this.users.get(userId);
    if (account?.deactivated) return error(403, 'M_USER_DEACTIVATED', 'This account has been deactivated');
    if (!account || account.password === null || account.password !== body.password) return error(403, 'M_FORBIDDEN', 'Invalid username or password');
    const token = this.issueToken(userId);
    return { status: 200, body: { user_id: userId, access_token: token, home_server: this.serverName, device_id: this.tokens.get(token)!.deviceId } };
  }

  /** The requester must be a server admin: synapse/api/auth (token) and rest/admin/_base.py. */
  private asAdmin(req: RecordedRequest, handler: (requesterToken: string) => FakeAnswer): FakeAnswer {
    const header = req.headers.authorization;
    const query = req.query.get('access_token');
    let token: string;
    if (typeof header === 'string') {
      if (query !== null) return error(401, 'M_MISSING_TOKEN', 'Mixing Authorization headers and access_token query parameters.');
      const parts = header.split(' ');
      if (parts[0] !== 'Bearer' || parts.length !== 2) return error(401, 'M_MISSING_TOKEN', 'Invalid Authorization header.');
      token = parts[1]!;
    } else if (query) {
      token = query;
    } else {
      return error(401, 'M_MISSING_TOKEN', 'Missing access token');
    }
    const session = this.tokens.get(token);
    if (!session) return { status: 401, body: { errcode: 'M_UNKNOWN_TOKEN', error: 'Invalid access token passed.', soft_logout: false } };
    if (!this.users.get(session.userId)?.admin) return error(403, 'M_FORBIDDEN', 'You are not a server admin');
    return handler(token);
  }

  private localUser(userId: string, notLocal: string): { ok: true } | { ok: false; answer: FakeAnswer } {
    if (!/^@[^:]+:.+$/.test(userId)) return { ok: false, answer: error(400, 'M_INVALID_PARAM', 'Invalid user id') };
    if (userId.slice(userId.indexOf(':') + 1) !== this.serverName) return { ok: false, answer: error(400, 'M_UNKNOWN', notLocal) };
    return { ok: true };
  }

  private queryUser(userId: string): FakeAnswer {
    const local = this.localUser(userId, 'Can only look up local users');
    if (!local.ok) return local.answer;
    const user = this.users.get(userId);
    if (!user) return error(404, 'M_NOT_FOUND', 'User not found');
    return {
      status: 200,
      body: {
        name: user.userId,
        displayname: user.displayname,
        threepids: [],
        avatar_url: null,
        is_guest: false,
        admin: user.admin,
        deactivated: user.deactivated,
        erased: user.erased,
        shadow_banned: false,
        creation_ts: user.creationTs,
        last_seen_ts: null,
        appservice_id: null,
        consent_server_notice_sent: null,
        consent_version: null,
        consent_ts: null,
        external_ids: [],
        user_type: null,
        locked: false,
        suspended: false,
      },
    };
  }

  private resetPassword(requesterToken: string, userId: string, rawBody: string): FakeAnswer {
    if (!/^@[^:]+:.+$/.test(userId)) return error(400, 'M_INVALID_PARAM', 'Invalid user id');
    const parsed = jsonObject(rawBody);
    if (!parsed.ok) return notJson(parsed.problem);
    if (!('new_password' in parsed.value)) return error(400, 'M_MISSING_PARAM', "Missing params: ['new_password']");
    const user = this.users.get(userId);
    if (!user) return error(404, 'M_NOT_FOUND', 'Unknown user');
    user.password = String(parsed.value.new_password);
    if (parsed.value.logout_devices ?? true) {
      for (const [token, session] of this.tokens) if (session.userId === userId && token !== requesterToken) this.tokens.delete(token);
    }
    return { status: 200, body: {} };
  }

  private deactivate(userId: string, rawBody: string): FakeAnswer {
    const local = this.localUser(userId, 'Can only deactivate local users');
    if (!local.ok) return local.answer;
    const user = this.users.get(userId);
    if (!user) return error(404, 'M_NOT_FOUND', 'User not found');
    const parsed = jsonObject(rawBody, true);
    if (!parsed.ok) return notJson(parsed.problem);
    const erase = parsed.value.erase ?? false;
    if (typeof erase !== 'boolean') return error(400, 'M_BAD_JSON', "Param 'erase' must be a boolean, if given");
    user.deactivated = true;
    user.erased = user.erased || erase;
    user.password = null;
    for (const [token, session] of this.tokens) if (session.userId === userId) this.tokens.delete(token);
    return { status: 200, body: { id_server_unbind_result: 'success' } };
  }
}

function error(status: number, errcode: string, message: string): FakeAnswer {
  return { status, body: { errcode, error: message } };
}

function notJson(problem: 'not-json' | 'not-object'): FakeAnswer {
  return problem === 'not-json' ? error(400, 'M_NOT_JSON', 'Content not JSON.') : error(400, 'M_BAD_JSON', 'Content must be a JSON object.');
}

function unrecognized(): FakeAnswer {
  return error(404, 'M_UNRECOGNIZED', 'Unrecognized request');
}
