import { createHash } from 'node:crypto';
import type { Logger } from '../host/log.ts';
import type { CredentialLookup, RegistryCredential } from './credentials.ts';
import { MANIFEST_ACCEPT, parseManifest, type ParsedManifest } from './manifest.ts';
import { registryEndpoint, type ImageReference, type RegistryEndpoint, type RegistryMirrors } from './reference.ts';

export type RegistryErrorKind = 'unreachable' | 'not-found' | 'unauthorized' | 'digest-mismatch' | 'protocol';

/** A failure talking to a registry; `kind` lets callers pick an exit code and a hint. */
export class RegistryError extends Error {
  constructor(
    message: string,
    readonly kind: RegistryErrorKind,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

export interface FetchedManifest {
  /** sha256 of the exact bytes received (verified against the requested digest, if any). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  parsed: ParsedManifest;
}

export type RepositoryRef = Pick<ImageReference, 'registry' | 'repository'>;

export interface RegistryClientOptions {
  mirrors?: RegistryMirrors;
  credentials?: CredentialLookup;
  /** Time allowed until a response's headers arrive. */
  timeoutMs?: number;
  log?: Logger;
}

export function sha256Digest(bytes: Buffer | Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/(\w+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = p[2] ?? p[3] ?? '';
  return { scheme: m[1]!.toLowerCase(), params };
}

function basicHeader(c: RegistryCredential): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/**
 * A read-only client for the OCI distribution API over Node's fetch: manifests and
 * blobs, anonymous or authenticated (Bearer token challenge or Basic), through
 * optional mirrors. Counts its HTTP requests so callers can prove a cache worked.
 */
export class RegistryClient {
  /** HTTP requests sent so far (token requests included). */
  requestCount = 0;
  private readonly authorizations = new Map<string, string>();

  constructor(private readonly opts: RegistryClientOptions = {}) {}

  endpoint(ref: RepositoryRef): RegistryEndpoint {
    return registryEndpoint(ref, this.opts.mirrors);
  }

  /** Fetches a manifest or index by tag or digest, checks its digest, and parses it. */
  async getManifest(ref: RepositoryRef, tagOrDigest: string): Promise<FetchedManifest> {
    const ep = this.endpoint(ref);
    const where = `${ep.baseUrl}/v2/${ep.repository}/manifests/${tagOrDigest}`;
    const res = await this.request(ep, `/v2/${ep.repository}/manifests/${tagOrDigest}`, MANIFEST_ACCEPT);
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`${ref.registry}/${ref.repository}:${tagOrDigest} not found (GET ${where} → 404)`, 'not-found');
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`GET ${where} → HTTP ${res.status}`, 'protocol');
    }
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256Digest(bytes);
    const expected = tagOrDigest.startsWith('sha256:') ? tagOrDigest : res.headers.get('docker-content-digest');
    if (expected && expected.startsWith('sha256:') && expected !== digest) {
      throw new RegistryError(
        `digest mismatch for manifest ${ref.registry}/${ref.repository}@${expected}: the registry at ${ep.baseUrl} sent content with digest ${digest}`,
        'digest-mismatch',
      );
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(bytes, res.headers.get('content-type') ?? undefined);
    } catch (err) {
      throw new RegistryError(`${where}: ${(err as Error).message}`, 'protocol');
    }
    return { digest, mediaType: parsed.mediaType, bytes, parsed };
  }

  /** Opens a blob for reading; the caller verifies the digest while it streams. */
  async openBlob(ref: RepositoryRef, digest: string): Promise<{ body: ReadableStream<Uint8Array>; size?: number }> {
    const ep = this.endpoint(ref);
    const res = await this.request(ep, `/v2/${ep.repository}/blobs/${digest}`, '*/*');
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`blob ${digest} of ${ref.registry}/${ref.repository} not found at ${ep.baseUrl}`, 'not-found');
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new RegistryError(`GET ${ep.baseUrl}/v2/${ep.repository}/blobs/${digest} → HTTP ${res.status}`, 'protocol');
    }
    const length = Number(res.headers.get('content-length'));
    return { body: res.body, size: Number.isFinite(length) && length > 0 ? length : undefined };
  }

  private async request(ep: RegistryEndpoint, path: string, accept: string): Promise<Response> {
    const scope = `repository:${ep.repository}:pull`;
    const key = `${ep.baseUrl} ${scope}`;
    let res = await this.send(ep, path, accept, this.authorizations.get(key) ?? this.authorizations.get(ep.baseUrl));
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.headers.get('www-authenticate'));
    await res.body?.cancel();
    const credential = this.opts.credentials?.(ep.host);
    if (challenge?.scheme === 'bearer') {
      const token = await this.fetchToken(ep, challenge, scope, credential);
      this.authorizations.set(key, `Bearer ${token}`);
      res = await this.send(ep, path, accept, `Bearer ${token}`);
    } else if (challenge?.scheme === 'basic' && credential) {
      this.authorizations.set(ep.baseUrl, basicHeader(credential));
      res = await this.send(ep, path, accept, basicHeader(credential));
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new RegistryError(
        `${ep.baseUrl} refused access to ${ep.repository} (HTTP ${res.status})${credential ? ' with the configured credentials' : ' without credentials'}`,
        'unauthorized',
      );
    }
    return res;
  }

  private async fetchToken(ep: RegistryEndpoint, challenge: Challenge, scope: string, credential?: RegistryCredential): Promise<string> {
    const realm = challenge.params.realm;
    if (!realm) throw new RegistryError(`${ep.baseUrl} asked for a bearer token but named no realm`, 'protocol');
    const url = new URL(realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? scope);
    this.requestCount++;
    let res: Response;
    try {
      res = await fetch(url, {
        headers: credential ? { authorization: basicHeader(credential) } : {},
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new RegistryError(`token service ${url.origin} unreachable: ${describeFetchError(err)}`, 'unreachable');
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new RegistryError(`token service ${url.origin} refused ${credential ? 'the configured credentials' : 'anonymous access'} for ${scope} (HTTP ${res.status})`, 'unauthorized');
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(`token service ${url.origin} answered HTTP ${res.status}`, 'protocol');
    }
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service ${url.origin} returned no token`, 'protocol');
    return token;
  }

  private async send(ep: RegistryEndpoint, path: string, accept: string, authorization?: string): Promise<Response> {
    this.requestCount++;
    const headers: Record<string, string> = { accept, 'user-agent': 'memu' };
    if (authorization) headers.authorization = authorization;
    // The timeout covers the wait for headers only: a large layer may stream for minutes.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(new DOMException('timed out', 'TimeoutError')), this.opts.timeoutMs ?? 30_000);
    try {
      this.opts.log?.debug({ url: ep.baseUrl + path }, 'registry request');
      return await fetch(ep.baseUrl + path, { headers, signal: abort.signal });
    } catch (err) {
      throw new RegistryError(`registry ${ep.baseUrl} unreachable: ${describeFetchError(err)}`, 'unreachable');
    } finally {
      clearTimeout(timer);
    }
  }
}

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'name lookup failed',
  ETIMEDOUT: 'timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'no route to host',
  ENETUNREACH: 'network unreachable',
};

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || (e.cause as Error | undefined)?.name === 'TimeoutError') return 'timed out';
  const code = e.cause?.code;
  if (code) return NETWORK_ERRORS[code] ? `${code} (${NETWORK_ERRORS[code]})` : code;
  return e.cause?.message ?? e.message;
}
