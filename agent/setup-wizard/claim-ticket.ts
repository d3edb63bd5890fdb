import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * Proof, in this browser, that the claim code was typed: a signed cookie (httpOnly,
 * SameSite=Strict, one hour) that lets the same browser create the admin. It outlives a
 * reload or the box restarting (the signing key is kept on the data partition), so the
 * code is not asked twice; another browser on the network has no ticket and must claim.
 */
const CLAIM_COOKIE = 'memu_claim';
const CLAIM_TICKET_MS = 3600_000;

export function issueClaimTicket(reply: FastifyReply, now = Date.now()): void {
  reply.setCookie(CLAIM_COOKIE, `claimed.${now + CLAIM_TICKET_MS}`, { signed: true, httpOnly: true, sameSite: 'strict', path: '/admin/setup', maxAge: CLAIM_TICKET_MS / 1000 });
}

export function hasClaimTicket(request: FastifyRequest, now = Date.now()): boolean {
  const cookie = request.cookies[CLAIM_COOKIE];
  if (!cookie) return false;
  const { valid, value } = request.unsignCookie(cookie);
  const expiresAt = valid && value ? Number(/^claimed\.(\d+)$/.exec(value)?.[1]) : NaN;
  return expiresAt > now;
}

export function clearClaimTicket(reply: FastifyReply): void {
  reply.clearCookie(CLAIM_COOKIE, { path: '/admin/setup' });
}
