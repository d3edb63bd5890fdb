/**
 * Container image references as Docker reads them: `[registry[:port]/]path[:tag][@sha256:…]`,
 * with Docker Hub as the default registry and `library/` as its default namespace.
 */

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

export interface ImageReference {
  /** Canonical registry name: `docker.io`, `ghcr.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry: `library/nginx`, `immich-app/immich-server`. */
  repository: string;
  tag?: string;
  digest?: string;
  /** The text it was parsed from, unchanged. */
  original: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export function isDigest(s: string): boolean {
  return DIGEST.test(s);
}

export function parseImageReference(original: string): ImageReference {
  const bad = (why: string) => new Error(`bad image reference "${original}": ${why}`);
  let rest = original.trim();
  if (!rest) throw bad('empty');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad('the digest must be sha256:<64 hex digits>');
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`invalid tag "${tag}"`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API_HOST) registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  for (const p of parts) {
    if (!PATH_COMPONENT.test(p)) throw bad(`invalid repository path component "${p}" (lower-case letters, digits and . _ - only)`);
  }
  return { registry, repository: parts.join('/'), tag, digest, original };
}

/** True when the reference names something that can move: a tag without a digest. */
export function isFloating(ref: ImageReference): boolean {
  return ref.digest === undefined;
}

/** The name Docker shows and stores for a repository: `nginx`, `me/app`, `ghcr.io/x/y`. */
export function familiarName(ref: Pick<ImageReference, 'registry' | 'repository'>): string {
  if (ref.registry === DOCKER_HUB) {
    return ref.repository.startsWith('library/') && ref.repository.split('/').length === 2
      ? ref.repository.slice('library/'.length)
      : ref.repository;
  }
  return `${ref.registry}/${ref.repository}`;
}

/** Fully qualified repository name, as Docker records a layer's source: `docker.io/library/nginx`. */
export function fullName(ref: Pick<ImageReference, 'registry' | 'repository'>): string {
  return `${ref.registry}/${ref.repository}`;
}

/**
 * Registry mirrors, `FROM=TO`: requests for registry FROM go to TO instead, e.g.
 * `docker.io=127.0.0.1:5000` or `ghcr.io=http://mirror.factory:5000/ghcr` (a path
 * prefixes the repository). References and the lock keep the original names.
 */
export type RegistryMirrors = Record<string, string>;

export function parseRegistryMirror(spec: string): [from: string, to: string] {
  const eq = spec.indexOf('=');
  const from = eq > 0 ? spec.slice(0, eq).trim() : '';
  const to = eq > 0 ? spec.slice(eq + 1).trim() : '';
  if (!from || !to) throw new Error(`bad registry mirror "${spec}": expected FROM=TO, e.g. docker.io=127.0.0.1:5000`);
  return [canonicalRegistry(from), to.replace(/\/+$/, '')];
}

function canonicalRegistry(host: string): string {
  const h = host.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return h === 'index.docker.io' || h === DOCKER_HUB_API_HOST ? DOCKER_HUB : h;
}

/** Where the HTTP requests for a reference's repository go. */
export interface RegistryEndpoint {
  /** `https://ghcr.io` or `http://127.0.0.1:5000` (no trailing slash). */
  baseUrl: string;
  /** host[:port] actually contacted, the key for credentials. */
  host: string;
  /** Repository path at that endpoint (mirror prefix applied). */
  repository: string;
}

/** Loopback registries speak plain HTTP (Docker's insecure-registry default); all others HTTPS. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

export function registryEndpoint(ref: Pick<ImageReference, 'registry' | 'repository'>, mirrors: RegistryMirrors = {}): RegistryEndpoint {
  const mirror = mirrors[ref.registry];
  if (mirror) {
    const scheme = /^https?:\/\//.exec(mirror)?.[0];
    const withoutScheme = scheme ? mirror.slice(scheme.length) : mirror;
    const slash = withoutScheme.indexOf('/');
    const host = slash >= 0 ? withoutScheme.slice(0, slash) : withoutScheme;
    const prefix = slash >= 0 ? withoutScheme.slice(slash + 1) : '';
    const base = scheme ?? (isLoopbackHost(host) ? 'http://' : 'https://');
    return { baseUrl: `${base}${host}`, host, repository: prefix ? `${prefix}/${ref.repository}` : ref.repository };
  }
  const host = ref.registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : ref.registry;
  return { baseUrl: `${isLoopbackHost(host) ? 'http' : 'https'}://${host}`, host, repository: ref.repository };
}
