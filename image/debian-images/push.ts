import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import type { CredentialLookup } from '../oci/credentials.ts';
import { MediaType } from '../oci/manifest.ts';
import { parseImageReference, registryEndpoint, type ImageReference, type RegistryEndpoint } from '../oci/reference.ts';
import type { Blob } from './oci-image.ts';

/**
 * Pushes an image (its index, one manifest per platform, configs and layers) to an OCI
 * registry with the distribution API: each blob is checked with HEAD and uploaded in one
 * PUT when missing, then the manifests by digest and the index by tag. Access is
 * anonymous, or the credentials `memu stack lock` uses (Bearer token challenge or Basic).
 */
export interface PushedImage {
  /** `REGISTRY/REPO:TAG` as given. */
  reference: string;
  /** The index's digest: what the tag now points at. */
  digest: string;
  /** Bytes uploaded (blobs the registry already had are not sent again). */
  uploadedBytes: number;
}

export interface ImageToPush {
  index: Blob;
  manifests: { manifest: Blob; config: Blob; layers: readonly Blob[] }[];
}

export function parsePushReference(text: string): ImageReference & { tag: string } {
  let ref: ImageReference;
  try {
    ref = parseImageReference(text);
  } catch (err) {
    throw new MemuError((err as Error).message, ExitCode.badInput, 'e.g. --push 127.0.0.1:5000/memu/front:1');
  }
  if (!ref.tag || ref.digest) throw new MemuError(`--push ${text}: name a tag to push to, and no digest`, ExitCode.badInput, 'e.g. --push 127.0.0.1:5000/memu/front:1');
  return { ...ref, tag: ref.tag };
}

export async function pushImage(reference: string, image: ImageToPush, opts: { credentials?: CredentialLookup; log?: Logger; onBytes?: (n: number) => void } = {}): Promise<PushedImage> {
  const ref = parsePushReference(reference);
  const session = new PushSession(registryEndpoint(ref), opts.credentials);
  let uploadedBytes = 0;
  const seen = new Set<string>();
  for (const { manifest, config, layers } of image.manifests) {
    for (const blob of [...layers, config]) {
      if (seen.has(blob.digest)) continue;
      seen.add(blob.digest);
      if (await session.putBlob(blob)) {
        uploadedBytes += blob.size;
        opts.onBytes?.(blob.size);
      }
    }
    await session.putManifest(manifest.digest, manifest, MediaType.ociManifest);
  }
  await session.putManifest(ref.tag, image.index, MediaType.ociIndex);
  opts.log?.debug({ reference, digest: image.index.digest, uploadedBytes }, 'image pushed');
  return { reference, digest: image.index.digest, uploadedBytes };
}

class PushSession {
  private authorization: string | undefined;

  constructor(
    private readonly ep: RegistryEndpoint,
    private readonly credentials?: CredentialLookup,
  ) {}

  /** Uploads a blob unless the registry has it; true when it was sent. */
  async putBlob(blob: Blob): Promise<boolean> {
    const head = await this.request('HEAD', `/v2/${this.ep.repository}/blobs/${blob.digest}`);
    await head.body?.cancel();
    if (head.ok) return false;
    const start = await this.request('POST', `/v2/${this.ep.repository}/blobs/uploads/`);
    const location = start.headers.get('location');
    if (start.status !== 202 || !location) throw await this.failure(start, `starting an upload to ${this.ep.repository}`);
    await start.body?.cancel();
    const url = new URL(location, this.ep.baseUrl);
    url.searchParams.set('digest', blob.digest);
    const put = await this.request('PUT', url.pathname + url.search, { 'content-type': 'application/octet-stream' }, blob.bytes);
    if (put.status !== 201) throw await this.failure(put, `uploading ${blob.digest}`);
    await put.body?.cancel();
    return true;
  }

  async putManifest(reference: string, blob: Blob, mediaType: string): Promise<void> {
    const res = await this.request('PUT', `/v2/${this.ep.repository}/manifests/${reference}`, { 'content-type': mediaType }, blob.bytes);
    if (res.status !== 201) throw await this.failure(res, `storing the manifest ${reference}`);
    await res.body?.cancel();
  }

  private async request(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Response> {
    let res = await this.send(method, path, headers, body);
    if (res.status !== 401) return res;
    const challenge = res.headers.get('www-authenticate') ?? '';
    await res.body?.cancel();
    this.authorization = await this.authorize(challenge);
    res = await this.send(method, path, headers, body);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new MemuError(`${this.ep.baseUrl} refused to let ${this.credentials?.(this.ep.host) ? 'the configured credentials' : 'an anonymous client'} push to ${this.ep.repository} (HTTP ${res.status})`, ExitCode.environment, 'log in with `docker login`, or set MEMU_REGISTRY_AUTH');
    }
    return res;
  }

  private async authorize(challenge: string): Promise<string> {
    const credential = this.credentials?.(this.ep.host);
    const basic = credential ? `Basic ${Buffer.from(`${credential.username}:${credential.password}`).toString('base64')}` : undefined;
    const scheme = /^\s*(\w+)/.exec(challenge)?.[1]?.toLowerCase();
    if (scheme === 'basic' && basic) return basic;
    if (scheme !== 'bearer') throw new MemuError(`${this.ep.baseUrl} asks for credentials to push to ${this.ep.repository}`, ExitCode.environment, 'log in with `docker login`, or set MEMU_REGISTRY_AUTH');
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
    if (!params.realm) throw new MemuError(`${this.ep.baseUrl} asked for a bearer token but named no realm`, ExitCode.failure);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', `repository:${this.ep.repository}:pull,push`);
    const res = await fetch(url, { headers: basic ? { authorization: basic } : {}, signal: AbortSignal.timeout(30_000) }).catch((err: Error) => {
      throw new MemuError(`token service ${url.origin} unreachable: ${err.message}`, ExitCode.environment, 'check the network');
    });
    const json = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string };
    const token = json.token ?? json.access_token;
    if (!res.ok || !token) throw new MemuError(`token service ${url.origin} gave no push token for ${this.ep.repository} (HTTP ${res.status})`, ExitCode.environment, 'log in with `docker login`, or set MEMU_REGISTRY_AUTH');
    return `Bearer ${token}`;
  }

  private async send(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Response> {
    try {
      return await fetch(this.ep.baseUrl + path, {
        method,
        headers: { 'user-agent': 'memu', ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) },
        ...(body ? { body: new Uint8Array(body) } : {}),
        signal: AbortSignal.timeout(10 * 60_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new MemuError(`registry ${this.ep.baseUrl} unreachable: ${cause}`, ExitCode.environment, 'check that the registry runs and the address is right');
    }
  }

  private async failure(res: Response, what: string): Promise<Error> {
    const text = (await res.text().catch(() => '')).slice(0, 500);
    return new MemuError(`${this.ep.baseUrl}: ${what} failed: HTTP ${res.status} ${text}`.trim(), ExitCode.failure);
  }
}
