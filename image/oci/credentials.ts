import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ignoreNotFound } from '../../shared/errors.ts';

/** A registry login: user name and password (or access token used as the password). */
export interface RegistryCredential {
  username: string;
  password: string;
}

/** Finds the credential for a registry host, or undefined for anonymous access. */
export type CredentialLookup = (host: string) => RegistryCredential | undefined;

type AuthEntry = { auth?: string; username?: string; password?: string; identitytoken?: string };

/** Keys in `auths` are written many ways (`https://ghcr.io`, `https://index.docker.io/v1/`): reduce them to a host. */
function normalizeHost(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' || host === 'docker.io' ? 'docker.io' : host;
}

function decodeEntry(host: string, entry: AuthEntry, source: string): RegistryCredential {
  if (entry.username !== undefined && entry.password !== undefined) return { username: entry.username, password: entry.password };
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon > 0) return { username: plain.slice(0, colon), password: plain.slice(colon + 1) };
  }
  throw new Error(`${source}: the entry for ${host} has neither "auth" (base64 user:password) nor username and password`);
}

/** Parses an `auths` map (Docker's config.json shape) into host → credential. */
export function parseAuths(auths: unknown, source: string): Map<string, RegistryCredential> {
  const out = new Map<string, RegistryCredential>();
  if (!auths || typeof auths !== 'object') return out;
  for (const [key, entry] of Object.entries(auths as Record<string, AuthEntry>)) {
    if (!entry || typeof entry !== 'object' || (!entry.auth && entry.username === undefined)) continue; // credsStore placeholders
    const host = normalizeHost(key);
    out.set(host, decodeEntry(host, entry, source));
  }
  return out;
}

/**
 * Registry credentials, first match wins:
 * 1. `MEMU_REGISTRY_AUTH`: JSON, either `{"auths": {...}}` or the `auths` map itself,
 *    entries `{"auth": base64("user:password")}` or `{"username", "password"}`;
 * 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), `auths`.
 * Credential helpers (`credsStore`, `credHelpers`) are not consulted.
 */
export async function loadCredentials(env: NodeJS.ProcessEnv = process.env): Promise<CredentialLookup> {
  const maps: Map<string, RegistryCredential>[] = [];
  const fromEnv = env.MEMU_REGISTRY_AUTH;
  if (fromEnv && fromEnv.trim()) {
    let json: { auths?: unknown } | Record<string, unknown>;
    try {
      json = JSON.parse(fromEnv) as Record<string, unknown>;
    } catch {
      throw new Error('MEMU_REGISTRY_AUTH is not valid JSON; expected {"auths": {"ghcr.io": {"auth": "<base64 user:password>"}}}');
    }
    maps.push(parseAuths('auths' in json ? json.auths : json, 'MEMU_REGISTRY_AUTH'));
  }
  const configPath = join(env.DOCKER_CONFIG ?? join(env.HOME ?? homedir(), '.docker'), 'config.json');
  const text = await readFile(configPath, 'utf8').catch(ignoreNotFound);
  if (text !== undefined) {
    let json: { auths?: unknown };
    try {
      json = JSON.parse(text) as { auths?: unknown };
    } catch {
      throw new Error(`${configPath} is not valid JSON`);
    }
    maps.push(parseAuths(json.auths, configPath));
  }
  return (host) => {
    const key = normalizeHost(host);
    for (const m of maps) {
      const c = m.get(key);
      if (c) return c;
    }
    return undefined;
  };
}
