/**
 * Registry authentication against a FAKE registry (an in-process HTTP server on
 * 127.0.0.1:18398) that follows the distribution token-auth contract: 401 with a
 * `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge, a token endpoint that
 * checks Basic credentials, then manifests for the bearer token. Debian's registry
 * cannot issue tokens without a separate token server, hence the fake.
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCredentials } from '../../../../image/oci/credentials.ts';
import { RegistryClient, RegistryError, sha256Digest } from '../../../../image/oci/registry-client.ts';
import { parseImageReference } from '../../../../image/oci/reference.ts';

const PORT = 18398;
const HOST = `127.0.0.1:${PORT}`;
const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }));
let server: Server;
const seen: string[] = [];
let lie = false;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = new URL(req.url!, `http://${HOST}`);
    seen.push(`${req.method} ${url.pathname}`);
    if (url.pathname === '/token') {
      const ok = req.headers.authorization === `Basic ${Buffer.from('family:s3cret').toString('base64')}`;
      if (!ok || url.searchParams.get('scope') !== 'repository:private/app:pull' || url.searchParams.get('service') !== 'fake') {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-123' }));
      return;
    }
    if (req.headers.authorization !== 'Bearer tok-123') {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${HOST}/token",service="fake",scope="repository:private/app:pull"` }).end();
      return;
    }
    const body = lie ? Buffer.from(manifest.toString().replace('[]', '[ ]')) : manifest;
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.index.v1+json', 'docker-content-digest': sha256Digest(manifest) }).end(body);
  });
  await new Promise<void>((r) => server.listen(PORT, '127.0.0.1', r));
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const ref = parseImageReference(`${HOST}/private/app:1`);

describe('bearer token authentication (fake registry)', () => {
  it('answers the challenge with a token fetched using the configured credentials, and reuses it', async () => {
    const client = new RegistryClient({ credentials: (host) => (host === HOST ? { username: 'family', password: 's3cret' } : undefined) });
    const m = await client.getManifest(ref, '1');
    expect(m.digest).toBe(sha256Digest(manifest));
    seen.length = 0;
    await client.getManifest(ref, '1');
    expect(seen).toEqual(['GET /v2/private/app/manifests/1']);
  });

  it('says access was refused, and whether credentials were used', async () => {
    const anonymous = new RegistryClient();
    await expect(anonymous.getManifest(ref, '1')).rejects.toThrow(/refused anonymous access/);
    const wrong = new RegistryClient({ credentials: () => ({ username: 'family', password: 'nope' }) });
    await expect(wrong.getManifest(ref, '1')).rejects.toMatchObject({ kind: 'unauthorized', message: expect.stringMatching(/configured credentials/) });
  });

  it('refuses a manifest whose bytes do not match the digest the registry claims', async () => {
    lie = true;
    try {
      const client = new RegistryClient({ credentials: () => ({ username: 'family', password: 's3cret' }) });
      const err = await client.getManifest(ref, '1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect(err).toMatchObject({ kind: 'digest-mismatch' });
    } finally {
      lie = false;
    }
  });

  it('reports an unreachable registry as such', async () => {
    const client = new RegistryClient({ timeoutMs: 2000 });
    await expect(client.getManifest(parseImageReference('127.0.0.1:18397/x/y:1'), '1')).rejects.toMatchObject({
      kind: 'unreachable',
      message: expect.stringMatching(/127\.0\.0\.1:18397 unreachable: ECONNREFUSED/),
    });
  });
});

describe('credentials', () => {
  it('reads MEMU_REGISTRY_AUTH first, then docker config.json auths (base64 user:password)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-creds-'));
    try {
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
            'ghcr.io': { auth: Buffer.from('gh:from-file').toString('base64') },
            'quay.io': {},
          },
          credsStore: 'desktop',
        }),
      );
      const env = { DOCKER_CONFIG: dir, MEMU_REGISTRY_AUTH: JSON.stringify({ auths: { 'https://ghcr.io': { username: 'gh', password: 'from-env' } } }) };
      const lookup = await loadCredentials(env);
      expect(lookup('ghcr.io')).toEqual({ username: 'gh', password: 'from-env' });
      expect(lookup('registry-1.docker.io')).toEqual({ username: 'hubuser', password: 'hubpass' });
      expect(lookup('quay.io')).toBeUndefined();
      expect(lookup('127.0.0.1:5000')).toBeUndefined();
      await expect(loadCredentials({ DOCKER_CONFIG: dir, MEMU_REGISTRY_AUTH: '{oops' })).rejects.toThrow(/MEMU_REGISTRY_AUTH is not valid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('works with no docker config at all (anonymous)', async () => {
    const lookup = await loadCredentials({ DOCKER_CONFIG: join(tmpdir(), 'memu-no-such-dir') });
    expect(lookup('ghcr.io')).toBeUndefined();
  });
});
