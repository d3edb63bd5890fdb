import { excerpt, JsonServiceClient, ServiceCallError, type JsonRequest } from '../../shared/http/http-json.ts';

/**
 * A client for the parts of Immich's API the agent uses (Immich 2.7.5; shapes from the
 * @immich/sdk 2.7.5 package generated from open-api/immich-openapi-specs.json, behaviour
 * from immich-app/immich server/src/services/auth.service.ts and user-admin.service.ts):
 *
 *   GET    /api/server/ping          {res: "pong"}
 *   POST   /api/auth/admin-sign-up   SignUpDto {email, password, name} → 201 UserAdminResponseDto;
 *                                    400 "The server already has an admin"
 *   POST   /api/auth/login           LoginCredentialDto {email, password} → 201 LoginResponseDto
 *                                    {accessToken, userId, isAdmin, …}; 401 "Incorrect email or password"
 *   GET    /api/admin/users          UserAdminResponseDto[] (soft-deleted users only with ?withDeleted=true)
 *   POST   /api/admin/users          UserAdminCreateDto {email, name, password, shouldChangePassword} → 201;
 *                                    400 "User exists"
 *   PUT    /api/admin/users/{id}     UserAdminUpdateDto {password, shouldChangePassword} → 200
 *   DELETE /api/admin/users/{id}     UserAdminDeleteDto {force} → 200; a soft delete unless force
 *
 * Admin routes take `Authorization: Bearer <accessToken>` or `x-api-key: <key>`; errors
 * are NestJS HTTP exceptions, `{message, error, statusCode, correlationId}`, `message` a
 * string or (validation) a list of strings.
 */
export interface ImmichUser {
  id: string;
  email: string;
  name: string;
  isAdmin: boolean;
  shouldChangePassword: boolean;
  deletedAt: string | null;
  status: string;
}

export interface ImmichLogin {
  accessToken: string;
  userId: string;
  userEmail: string;
  isAdmin: boolean;
  shouldChangePassword: boolean;
}

export type ImmichAuth = { accessToken: string } | { apiKey: string };

export class ImmichApiError extends ServiceCallError {
  constructor(
    what: string,
    status: number,
    /** Immich's message(s): one for service errors, one per problem for validation errors. */
    readonly messages: string[],
    body: unknown,
  ) {
    super(`${what}: Immich answered HTTP ${status}: ${messages.join('; ')}`, 'answer', status, body);
    this.name = 'ImmichApiError';
  }

  has(message: string): boolean {
    return this.messages.includes(message);
  }
}

/**
 * Immich names its users by e-mail address. A family member has none to give (and must
 * not need one), so each gets an address made from their username and the device's host
 * name under `home.arpa` (RFC 8375, the special-use domain for home networks): it is
 * unique per box, readable on the printed sheet ("anna@memu-hub.home.arpa"), is a valid
 * address to Immich's validator, and can never deliver mail to a real domain somebody owns.
 */
export function immichEmail(username: string, hostname: string): string {
  const host = hostname.trim().toLowerCase().split('.')[0] ?? '';
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(host)) {
    throw new Error(`the device's host name "${hostname}" is not a DNS label, so it cannot name Immich accounts`);
  }
  return `${username.toLowerCase()}@${host}.home.arpa`;
}

export class ImmichAdminClient extends JsonServiceClient {
  constructor(baseUrl: string, timeoutMs = 10_000) {
    super('Immich', baseUrl, '/api/server/ping', timeoutMs);
  }

  async signUpAdmin(body: { email: string; password: string; name: string }): Promise<ImmichUser> {
    return (await this.call({ method: 'POST', path: '/api/auth/admin-sign-up', body })) as ImmichUser;
  }

  async login(body: { email: string; password: string }): Promise<ImmichLogin> {
    return (await this.call({ method: 'POST', path: '/api/auth/login', body })) as ImmichLogin;
  }

  async listUsers(auth: ImmichAuth, options: { withDeleted?: boolean } = {}): Promise<ImmichUser[]> {
    const query = options.withDeleted ? '?withDeleted=true' : '';
    return (await this.call({ method: 'GET', path: `/api/admin/users${query}` }, auth)) as ImmichUser[];
  }

  async createUser(auth: ImmichAuth, body: { email: string; name: string; password: string; shouldChangePassword: boolean }): Promise<ImmichUser> {
    return (await this.call({ method: 'POST', path: '/api/admin/users', body }, auth)) as ImmichUser;
  }

  async updateUser(auth: ImmichAuth, id: string, body: { password?: string; shouldChangePassword?: boolean }): Promise<ImmichUser> {
    return (await this.call({ method: 'PUT', path: `/api/admin/users/${encodeURIComponent(id)}`, body }, auth)) as ImmichUser;
  }

  async deleteUser(auth: ImmichAuth, id: string, body: { force: boolean }): Promise<ImmichUser> {
    return (await this.call({ method: 'DELETE', path: `/api/admin/users/${encodeURIComponent(id)}`, body }, auth)) as ImmichUser;
  }

  private async call(req: Omit<JsonRequest, 'timeoutMs' | 'headers'>, auth?: ImmichAuth): Promise<unknown> {
    const headers: Record<string, string> | undefined = !auth
      ? undefined
      : 'apiKey' in auth
        ? { 'x-api-key': auth.apiKey }
        : { authorization: `Bearer ${auth.accessToken}` };
    const answer = await this.send(req, headers);
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    const what = `Immich ${req.method} ${req.path.replace(/\/[0-9a-f-]{36}$/, '/{id}').split('?')[0]}`;
    const message = (answer.body as { message?: unknown } | undefined)?.message;
    const messages = typeof message === 'string' ? [message] : Array.isArray(message) ? message.map(String) : [];
    if (messages.length > 0) throw new ImmichApiError(what, answer.status, messages, answer.body);
    throw new ServiceCallError(`${what}: HTTP ${answer.status}: ${excerpt(answer.body)}`, 'answer', answer.status, answer.body);
  }
}
