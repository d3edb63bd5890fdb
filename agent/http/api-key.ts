import { timingSafeEqual } from 'node:crypto';
import type { onRequestHookHandler } from 'fastify';
import { apiKeyDigest } from '../../shared/contracts/agent-api.ts';

/** The SHA-256 (hex) of the one API key the device accepts, or undefined when it has none. */
export type ApiKeyDigest = () => Promise<string | undefined>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Answered without an API key (the liveness answer). Everything else needs one. */
    public?: boolean;
  }
}

/**
 * fastify's onRequest hook for the agent's API: a route marked `config: { public: true }`
 * passes, every other request (unknown paths too, so they reveal nothing) needs
 * `Authorization: Bearer <key>` whose SHA-256 matches the stored digest. The key is long
 * and random, so a plain hash and a constant-time comparison are enough; no rate limit
 * could make guessing 32+ random characters any harder.
 */
export function requireApiKey(digest: ApiKeyDigest): onRequestHookHandler {
  return async (request, reply) => {
    if (request.routeOptions.config?.public) return;
    const presented = /^Bearer ([^\s]+)$/.exec(request.headers.authorization ?? '')?.[1];
    const expected = await digest();
    if (presented && expected && digestsEqual(apiKeyDigest(presented), expected)) return;
    await reply
      .code(401)
      .header('www-authenticate', 'Bearer realm="memu-agent"')
      .send({ error: expected ? 'this needs the API key: Authorization: Bearer <key>' : 'this device has no API key (set agentApiKey in the preseed)' });
  };
}

function digestsEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b.trim().toLowerCase(), 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
