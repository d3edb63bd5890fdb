import { randomBytes, randomUUID } from 'node:crypto';
import { FakeHttpService, jsonObject, type FakeAnswer, type RecordedRequest } from './fake-synapse.ts';

/**
 * A FAKE Immich server (Immich cannot run here) serving, over real HTTP, exactly the
 * endpoints the agent uses, with Immich 2.7.5's validation and error answers (shapes:
 * the @immich/sdk 2.7.5 package, generated from open-api/immich-openapi-specs.json;
 * behaviour: immich-app/immich server/src/services/auth.service.ts, user-admin.service.ts,
 * base.service.ts createUser, repositories/user.repository.ts, controllers):
 *
 *   GET    /api/server/ping          200 {res: "pong"}
 *   POST   /api/auth/admin-sign-up   201 UserAdminResponseDto; 400 "The server already has an admin"
 *   POST   /api/auth/login           201 LoginResponseDto; 401 "Incorrect email or password"
 *   GET    /api/admin/users          200 UserAdminResponseDto[]; soft-deleted users only with ?withDeleted=true
 *   POST   /api/admin/users          201; 400 "User exists" (an active user has the e-mail); 500 when
 *                                    only a soft-deleted user has it (the e-mail column is unique but the
 *                                    existence check skips deleted users); 400 "password is required"
 *   GET    /api/admin/users/{id}     200; 400 "User not found"
 *   PUT    /api/admin/users/{id}     200; 400 "User not found" (deleted users too);
 *                                    400 "Email already in use by another account"
 *   DELETE /api/admin/users/{id}     200, the user with deletedAt and status "deleted" (restorable),
 *                                    or with {force: true} "removing" (gone right after); 400 "User not found";
 *                                    403 "Cannot delete your own account"
 *
 * Bodies are validated as Immich 2.x's class-validator DTOs do (400, `message` a list such
 * as "email must be an email"; e-mail addresses trimmed and lower-cased); `{id}` must be a
 * UUID ("id must be a UUID"). Admin routes need `Authorization: Bearer <accessToken>` (or
 * the immich_access_token cookie) or `x-api-key`: 401 "Authentication required", "Invalid
 * user token", "Invalid API key"; 403 "Forbidden" for a non-admin. Errors are NestJS
 * exceptions: {message, error, statusCode, correlationId}, the id also in x-immich-cid.
 */
export interface FakeImmichUser {
  id: string;
  email: string;
  name: string;
  password: string;
  isAdmin: boolean;
  shouldChangePassword: boolean;
  storageLabel: string | null;
  status: 'active' | 'deleted' | 'removing';
  deletedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i;
const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found' };

export class FakeImmich extends FakeHttpService {
  readonly users = new Map<string, FakeImmichUser>();
  private readonly sessions = new Map<string, string>();
  private readonly apiKeys = new Map<string, string>();

  /** Whether `password` signs in as `email` (what the member's app would do). */
  passwordWorks(email: string, password: string): boolean {
    const user = this.activeByEmail(email);
    return !!user && user.password === password;
  }

  activeByEmail(email: string): FakeImmichUser | undefined {
    return [...this.users.values()].find((u) => u.email === email.trim().toLowerCase() && u.deletedAt === null);
  }

  /** An API key of the user `email` (made in Immich's account settings). */
  createApiKey(email: string): string {
    const user = this.activeByEmail(email);
    if (!user) throw new Error(`no user ${email}`);
    const key = randomBytes(32).toString('base64url');
    this.apiKeys.set(key, user.id);
    return key;
  }

  /** Adds a user directly, as someone using Immich's web page would have. */
  addUser(email: string, password: string, isAdmin = false): FakeImmichUser {
    return this.insert({ email: email.toLowerCase(), name: email, password, isAdmin, shouldChangePassword: false, storageLabel: isAdmin ? 'admin' : null });
  }

  /** Forgets every session (as a sign-out everywhere would). */
  revokeAllSessions(): void {
    this.sessions.clear();
  }

  protected internalError(): FakeAnswer {
    const correlationId = randomBytes(4).toString('hex');
    return { status: 500, body: { message: 'Internal server error', statusCode: 500, correlationId }, headers: { 'x-immich-cid': correlationId } };
  }

  protected route(req: RecordedRequest): FakeAnswer {
    const { method, path } = req;
    if (path === '/api/server/ping' && method === 'GET') return { status: 200, body: { res: 'pong' } };
    if (path === '/api/auth/admin-sign-up' && method === 'POST') return this.signUpAdmin(req.body);
    if (path === '/api/auth/login' && method === 'POST') return this.login(req.body);
    if (path === '/api/admin/users') {
      if (method === 'GET') return this.asAdmin(req, () => this.list(req.query.get('withDeleted') === 'true'));
      if (method === 'POST') return this.asAdmin(req, () => this.create(req.body));
    }
    const m = /^\/api\/admin\/users\/([^/]+)$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]!);
      if (method === 'GET') return this.asAdmin(req, () => this.withUser(id, true, (user) => ({ status: 200, body: mapUserAdmin(user) })));
      if (method === 'PUT') return this.asAdmin(req, () => this.update(id, req.body));
      if (method === 'DELETE') return this.asAdmin(req, (requester) => this.remove(requester, id, req.body));
    }
    return fail(404, `Cannot ${method} ${path}`);
  }

  private signUpAdmin(raw: string): FakeAnswer {
    const dto = validate(raw, { email: 'email', password: 'string', name: 'string' }, ['email', 'password', 'name']);
    if ('answer' in dto) return dto.answer;
    if ([...this.users.values()].some((u) => u.isAdmin)) return fail(400, 'The server already has an admin');
    return this.createUser({ ...(dto.value as { email: string; password: string; name: string }), isAdmin: true, shouldChangePassword: false, storageLabel: 'admin' });
  }

  private login(raw: string): FakeAnswer {
    const dto = validate(raw, { email: 'email', password: 'string' }, ['email', 'password']);
    if ('answer' in dto) return dto.answer;
    const { email, password } = dto.value as { email: string; password: string };
    const user = this.activeByEmail(email);
    if (!user || user.password !== password) return fail(401, 'Incorrect email or password');
    const accessToken = randomBytes(32).toString('base64url');
    this.sessions.set(accessToken, user.id);
    return {
      status: 201,
      body: {
        accessToken,
        userId: user.id,
        userEmail: user.email,
        name: user.name,
        isAdmin: user.isAdmin,
        isOnboarded: false,
        profileImagePath: '',
        shouldChangePassword: user.shouldChangePassword,
      },
    };
  }

  /** auth.service.ts validate() and authenticate() for an admin route. */
  private asAdmin(req: RecordedRequest, handler: (requester: FakeImmichUser) => FakeAnswer): FakeAnswer {
    const [type, bearer] = (typeof req.headers.authorization === 'string' ? req.headers.authorization : '').split(' ', 2);
    const cookie = /(?:^|;\s*)immich_access_token=([^;]+)/.exec(typeof req.headers.cookie === 'string' ? req.headers.cookie : '')?.[1];
    const session = (type?.toLowerCase() === 'bearer' ? bearer : undefined) ?? cookie;
    const apiKey = req.headers['x-api-key'];
    let userId: string | undefined;
    if (session) {
      userId = this.sessions.get(session);
      if (!userId || this.users.get(userId)?.deletedAt !== null) return fail(401, 'Invalid user token');
    } else if (typeof apiKey === 'string') {
      userId = this.apiKeys.get(apiKey);
      if (!userId || this.users.get(userId)?.deletedAt !== null) return fail(401, 'Invalid API key');
    } else {
      return fail(401, 'Authentication required');
    }
    const requester = this.users.get(userId)!;
    if (!requester.isAdmin) return fail(403, 'Forbidden');
    return handler(requester);
  }

  private list(withDeleted: boolean): FakeAnswer {
    const users = [...this.users.values()].filter((u) => withDeleted || u.deletedAt === null).reverse();
    return { status: 200, body: users.map(mapUserAdmin) };
  }

  private create(raw: string): FakeAnswer {
    const dto = validate(raw, { email: 'email', password: 'string', name: 'string', shouldChangePassword: 'boolean', isAdmin: 'boolean', notify: 'boolean' }, [
      'email',
      'password',
      'name',
    ]);
    if ('answer' in dto) return dto.answer;
    const value = dto.value as { email: string; password: string; name: string; shouldChangePassword?: boolean; isAdmin?: boolean };
    if (!value.password) return fail(400, 'password is required');
    return this.createUser({ ...value, isAdmin: value.isAdmin ?? false, shouldChangePassword: value.shouldChangePassword ?? false, storageLabel: null });
  }

  /** base.service.ts createUser: the existence check skips soft-deleted users; the database does not. */
  private createUser(dto: { email: string; password: string; name: string; isAdmin: boolean; shouldChangePassword: boolean; storageLabel: string | null }): FakeAnswer {
    if (this.activeByEmail(dto.email)) return fail(400, 'User exists');
    if (!dto.isAdmin && ![...this.users.values()].some((u) => u.isAdmin)) return fail(400, 'The first registered account must the administrator.');
    if ([...this.users.values()].some((u) => u.email === dto.email)) return this.internalError(); // unique constraint on user.email
    return { status: 201, body: mapUserAdmin(this.insert(dto)) };
  }

  private insert(dto: Pick<FakeImmichUser, 'email' | 'name' | 'password' | 'isAdmin' | 'shouldChangePassword' | 'storageLabel'>): FakeImmichUser {
    const now = new Date().toISOString();
    const user: FakeImmichUser = { id: randomUUID(), ...dto, status: 'active', deletedAt: null, createdAt: now, updatedAt: now };
    this.users.set(user.id, user);
    return user;
  }

  private withUser(id: string, withDeleted: boolean, fn: (user: FakeImmichUser) => FakeAnswer): FakeAnswer {
    if (!UUID.test(id)) return fail(400, ['id must be a UUID']);
    const user = this.users.get(id);
    if (!user || (!withDeleted && user.deletedAt !== null)) return fail(400, 'User not found');
    return fn(user);
  }

  private update(id: string, raw: string): FakeAnswer {
    if (!UUID.test(id)) return fail(400, ['id must be a UUID']);
    const dto = validate(raw, { email: 'email', password: 'string', name: 'string', shouldChangePassword: 'boolean', isAdmin: 'boolean' }, []);
    if ('answer' in dto) return dto.answer;
    const value = dto.value as Partial<Pick<FakeImmichUser, 'email' | 'password' | 'name' | 'shouldChangePassword' | 'isAdmin'>>;
    return this.withUser(id, false, (user) => {
      if (value.email) {
        const duplicate = this.activeByEmail(value.email);
        if (duplicate && duplicate.id !== id) return fail(400, 'Email already in use by another account');
      }
      Object.assign(user, value, { updatedAt: new Date().toISOString() });
      return { status: 200, body: mapUserAdmin(user) };
    });
  }

  private remove(requester: FakeImmichUser, id: string, raw: string): FakeAnswer {
    if (!UUID.test(id)) return fail(400, ['id must be a UUID']);
    const dto = validate(raw, { force: 'boolean' }, [], true);
    if ('answer' in dto) return dto.answer;
    const force = (dto.value as { force?: boolean }).force ?? false;
    return this.withUser(id, false, (user) => {
      if (user.id === requester.id) return fail(403, 'Cannot delete your own account');
      user.status = force ? 'removing' : 'deleted';
      user.deletedAt = new Date().toISOString();
      const answer = { status: 200, body: mapUserAdmin(user) };
      if (force) this.users.delete(id); // the queued UserDelete job removes the row
      for (const [token, owner] of this.sessions) if (owner === id) this.sessions.delete(token);
      return answer;
    });
  }
}

type FieldKind = 'email' | 'string' | 'boolean';

/** class-validator over a JSON body: every problem, one message each, as Immich 2.x's ValidationPipe answers. */
function validate(raw: string, fields: Record<string, FieldKind>, required: string[], allowEmpty = false): { value: Record<string, unknown> } | { answer: FakeAnswer } {
  const parsed = jsonObject(raw, allowEmpty);
  if (!parsed.ok) return { answer: fail(400, parsed.problem === 'not-json' ? 'Unexpected token in JSON' : 'Bad Request') };
  const value: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, kind] of Object.entries(fields)) {
    const v = parsed.value[name];
    if (v === undefined || v === null) {
      if (required.includes(name)) problems.push(kind === 'email' ? `${name} must be an email` : `${name} should not be empty`);
      continue;
    }
    if (kind === 'boolean') {
      if (typeof v !== 'boolean') problems.push(`${name} must be a boolean value`);
      else value[name] = v;
    } else if (typeof v !== 'string') {
      problems.push(kind === 'email' ? `${name} must be an email` : `${name} must be a string`);
    } else if (kind === 'email') {
      const email = v.trim().toLowerCase();
      if (!EMAIL.test(email)) problems.push(`${name} must be an email`);
      else value[name] = email;
    } else {
      if (required.includes(name) && name !== 'password' && v.trim() === '') problems.push(`${name} should not be empty`);
      value[name] = v;
    }
  }
  return problems.length > 0 ? { answer: fail(400, problems) } : { value };
}

function fail(status: number, message: string | string[]): FakeAnswer {
  const correlationId = randomBytes(4).toString('hex');
  return { status, body: { message, error: REASONS[status] ?? 'Error', statusCode: status, correlationId }, headers: { 'x-immich-cid': correlationId } };
}

function mapUserAdmin(user: FakeImmichUser) {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    profileImagePath: '',
    avatarColor: 'primary',
    profileChangedAt: user.createdAt,
    storageLabel: user.storageLabel,
    shouldChangePassword: user.shouldChangePassword,
    isAdmin: user.isAdmin,
    createdAt: user.createdAt,
    deletedAt: user.deletedAt,
    updatedAt: user.updatedAt,
    oauthId: '',
    quotaSizeInBytes: null,
    quotaUsageInBytes: 0,
    status: user.status,
    license: null,
  };
}
