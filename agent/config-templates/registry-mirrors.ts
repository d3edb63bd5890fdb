import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ignoreNotFound } from '../../shared/errors.ts';

/**
 * Registry and image overrides for mirrors and air-gapped factories.
 *
 * Rules, one per line (`#` starts a comment), in the optional file
 * `compose/registry-mirrors` and/or the environment variable MEMU_REGISTRY_MIRROR
 * (rules separated by commas):
 *
 *   docker.io=mirror.factory.lan:5000/dockerhub     registry rule: FROM=TO[/prefix]
 *   ghcr.io=mirror.factory.lan:5000/ghcr
 *   docker.io/library/nginx:1.27-alpine=mirror.factory.lan:5000/memu/nginx:1.27-alpine
 *                                                    image rule: the left side names a
 *                                                    repository (has a '/')
 *
 * Registry rules use the same FROM=TO form as `memu stack lock --registry-mirror`. An
 * image rule beats a registry rule; the environment beats the file. The compose files
 * and the image lock always keep the original names; only the reference handed to the
 * Docker engine is rewritten. A mirror must serve byte-identical manifests (copy with
 * `skopeo copy --all` or a pull-through cache), because the lock's digests still apply.
 */
export interface RegistryMirrorRules {
  /** Registry host -> `host[:port][/prefix]`. */
  registries: Record<string, string>;
  /** Reference (`registry/repo:tag`) -> replacement reference. */
  images: Record<string, string>;
}

export interface ImageReferenceParts {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Splits a fully qualified reference; refuses short names (`nginx:1`) on purpose. */
export function splitImageReference(reference: string): ImageReferenceParts {
  let rest = reference.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new Error(`image reference ${reference}: bad digest "${digest}"`);
  }
  const slash = rest.indexOf('/');
  const first = slash > 0 ? rest.slice(0, slash) : '';
  if (!first || !(first.includes('.') || first.includes(':') || first === 'localhost')) {
    throw new Error(`image reference ${reference} must name its registry, e.g. docker.io/library/nginx:1.27-alpine`);
  }
  let repository = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
  }
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repository)) {
    throw new Error(`image reference ${reference}: bad repository "${repository}"`);
  }
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) throw new Error(`image reference ${reference}: bad tag "${tag}"`);
  return { registry: first, repository, tag, digest };
}

export function joinImageReference(parts: ImageReferenceParts): string {
  return `${parts.registry}/${parts.repository}${parts.tag ? `:${parts.tag}` : ''}${parts.digest ? `@${parts.digest}` : ''}`;
}

export function emptyMirrorRules(): RegistryMirrorRules {
  return { registries: {}, images: {} };
}

/** Parses rules (file text or a comma-separated env value); `source` names them in errors. */
export function parseRegistryMirrors(text: string, source: string, into: RegistryMirrorRules = emptyMirrorRules()): RegistryMirrorRules {
  const lines = text.split(/\r?\n|,/);
  lines.forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const eq = line.indexOf('=');
    const from = eq > 0 ? line.slice(0, eq).trim() : '';
    const to = eq > 0 ? line.slice(eq + 1).trim().replace(/\/+$/, '') : '';
    const where = `${source}${text.includes('\n') ? ` line ${index + 1}` : ''}`;
    if (!from || !to || /\s/.test(from) || /\s/.test(to)) {
      throw new Error(`${where}: "${line}" is not a rule; write FROM=TO, e.g. docker.io=mirror.lan:5000/dockerhub`);
    }
    if (from.includes('/')) {
      splitImageReference(from);
      splitImageReference(to);
      into.images[from] = to;
    } else {
      if (!/^[A-Za-z0-9.-]+(?::\d+)?$/.test(from)) throw new Error(`${where}: "${from}" is not a registry host`);
      if (!/^[A-Za-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._/-]+)?$/.test(to)) throw new Error(`${where}: "${to}" is not host[:port][/prefix]`);
      into.registries[from] = to;
    }
  });
  return into;
}

/** Reads `<composeDir>/registry-mirrors` (optional) and then MEMU_REGISTRY_MIRROR. */
export async function loadRegistryMirrors(composeDir: string, env: NodeJS.ProcessEnv = process.env): Promise<RegistryMirrorRules> {
  const rules = emptyMirrorRules();
  const file = join(composeDir, 'registry-mirrors');
  const text = await readFile(file, 'utf8').catch(ignoreNotFound);
  if (text !== undefined) parseRegistryMirrors(text, file, rules);
  if (env.MEMU_REGISTRY_MIRROR) parseRegistryMirrors(env.MEMU_REGISTRY_MIRROR, 'MEMU_REGISTRY_MIRROR', rules);
  return rules;
}

/**
 * The reference to hand to the engine for `reference` (as written in compose, with or
 * without a digest attached): an image rule replaces repository and tag, a registry
 * rule moves the repository under the mirror; a digest is kept as is.
 */
export function mirrorImageReference(reference: string, rules: RegistryMirrorRules): string {
  const parts = splitImageReference(reference);
  const withoutDigest = joinImageReference({ ...parts, digest: undefined });
  const image = rules.images[withoutDigest];
  if (image) {
    const replacement = splitImageReference(image);
    return joinImageReference({ ...replacement, digest: parts.digest ?? replacement.digest });
  }
  const mirror = rules.registries[parts.registry];
  if (!mirror) return reference;
  const slash = mirror.indexOf('/');
  const host = slash >= 0 ? mirror.slice(0, slash) : mirror;
  const prefix = slash >= 0 ? `${mirror.slice(slash + 1)}/` : '';
  return joinImageReference({ ...parts, registry: host, repository: `${prefix}${parts.repository}` });
}
