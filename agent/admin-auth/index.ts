/** The family's admin signing in: password rules, sessions, sign-in pages, rate limits on secrets. */
export { createAdminAuthModule, LIMIT_POLICIES } from './admin-auth-module.ts';
export type { AdminAuthModule } from './admin-auth-module.ts';
export { displayTextProblem, findAdmin, hasAdmin, passwordMatches, prepareAdmin, setAdminPassword, usernameProblem } from './admins.ts';
export type { AdminRecord, FieldProblems } from './admins.ts';
export { AttemptLimiter } from './attempt-limiter.ts';
export type { LimitKey, LimitPolicy, LimitVerdict } from './attempt-limiter.ts';
export { passwordProblem, PASSWORD_MIN_LENGTH } from './password-rules.ts';
export { safeNext } from './login-routes.ts';
export { SESSION_COOKIE, SESSION_IDLE_MS, SESSION_MAX_MS, Sessions } from './sessions.ts';
export type { SessionInfo } from './sessions.ts';
