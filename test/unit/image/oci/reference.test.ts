import { describe, expect, it } from 'vitest';
import { familiarName, fullName, parseImageReference, parseRegistryMirror, registryEndpoint } from '../../../../image/oci/reference.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseImageReference', () => {
  it('normalizes Docker Hub short names the way docker does', () => {
    expect(parseImageReference('nginx:1.27')).toMatchObject({ registry: 'docker.io', repository: 'library/nginx', tag: '1.27' });
    expect(parseImageReference('matrixdotorg/synapse:v1.120.0')).toMatchObject({ registry: 'docker.io', repository: 'matrixdotorg/synapse' });
    expect(parseImageReference('docker.io/library/redis:7')).toMatchObject({ registry: 'docker.io', repository: 'library/redis', tag: '7' });
    expect(parseImageReference('index.docker.io/ollama/ollama:0.5.1').registry).toBe('docker.io');
  });

  it('reads registries with ports, tags and digests', () => {
    const r = parseImageReference(`127.0.0.1:5000/team/app:2.1@${D}`);
    expect(r).toMatchObject({ registry: '127.0.0.1:5000', repository: 'team/app', tag: '2.1', digest: D });
    expect(parseImageReference('localhost/app').registry).toBe('localhost');
    expect(parseImageReference('ghcr.io/immich-app/immich-server:v1.119.0').repository).toBe('immich-app/immich-server');
    expect(parseImageReference('app').tag).toBeUndefined();
  });

  it('rejects malformed references with the reason', () => {
    expect(() => parseImageReference('Nginx:1')).toThrow(/invalid repository path component "Nginx"/);
    expect(() => parseImageReference('nginx@sha256:abc')).toThrow(/digest must be sha256/);
    expect(() => parseImageReference('')).toThrow(/empty/);
  });

  it('gives familiar and full names as dockerd records them', () => {
    expect(familiarName(parseImageReference('nginx:1'))).toBe('nginx');
    expect(familiarName(parseImageReference('docker.io/library/a/b:1'))).toBe('library/a/b');
    expect(familiarName(parseImageReference('me/app:1'))).toBe('me/app');
    expect(familiarName(parseImageReference('ghcr.io/x/y:1'))).toBe('ghcr.io/x/y');
    expect(fullName(parseImageReference('nginx'))).toBe('docker.io/library/nginx');
  });
});

describe('registry endpoints and mirrors', () => {
  it('uses HTTPS for remote registries, plain HTTP for loopback, registry-1 for Docker Hub', () => {
    expect(registryEndpoint(parseImageReference('nginx:1')).baseUrl).toBe('https://registry-1.docker.io');
    expect(registryEndpoint(parseImageReference('ghcr.io/x/y:1')).baseUrl).toBe('https://ghcr.io');
    expect(registryEndpoint(parseImageReference('127.0.0.1:5000/x:1')).baseUrl).toBe('http://127.0.0.1:5000');
    expect(registryEndpoint(parseImageReference('localhost:5000/x:1')).baseUrl).toBe('http://localhost:5000');
  });

  it('sends a mirrored registry to its mirror, with an optional repository prefix', () => {
    const mirrors = Object.fromEntries([parseRegistryMirror('docker.io=127.0.0.1:18300'), parseRegistryMirror('ghcr.io=https://mirror.example/ghcr/')]);
    expect(registryEndpoint(parseImageReference('nginx:1'), mirrors)).toEqual({ baseUrl: 'http://127.0.0.1:18300', host: '127.0.0.1:18300', repository: 'library/nginx' });
    expect(registryEndpoint(parseImageReference('ghcr.io/x/y:1'), mirrors)).toEqual({ baseUrl: 'https://mirror.example', host: 'mirror.example', repository: 'ghcr/x/y' });
    expect(registryEndpoint(parseImageReference('quay.io/x/y:1'), mirrors).baseUrl).toBe('https://quay.io');
  });

  it('rejects a mirror without FROM=TO', () => {
    expect(() => parseRegistryMirror('docker.io')).toThrow(/expected FROM=TO/);
    expect(parseRegistryMirror('https://index.docker.io/v1/=m:1')[0]).toBe('docker.io');
  });
});
