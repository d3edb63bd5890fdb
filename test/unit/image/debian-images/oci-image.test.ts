import { describe, expect, it } from 'vitest';
import { parseImageConfig, parseManifest } from '../../../../image/oci/manifest.ts';
import { blobOf, imageConfig, imageIndex, imageManifest } from '../../../../image/debian-images/oci-image.ts';
import { loadDefinition } from '../../../../image/debian-images/definitions/index.ts';

const diffId = `sha256:${'a'.repeat(64)}`;
const config = (platform: 'linux/amd64' | 'linux/arm64', labels: Record<string, string> = { b: '2', a: '1' }) =>
  imageConfig({ definition: loadDefinition('valkey'), platform, created: '2026-01-01T00:00:00Z', layers: [{ diffId, createdBy: 'packages' }], labels });

describe("an image's OCI documents", () => {
  it('config: numeric user, ports, entrypoint, healthcheck in nanoseconds, labels in order, history per layer', () => {
    const c = JSON.parse(config('linux/amd64').bytes.toString()) as Record<string, any>;
    expect(c).toMatchObject({ created: '2026-01-01T00:00:00Z', architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } });
    expect(c.variant).toBeUndefined();
    expect(c.config).toMatchObject({
      User: '999:999',
      ExposedPorts: { '6379/tcp': {} },
      Entrypoint: ['/usr/bin/valkey-server', '/etc/valkey/valkey.conf'],
      WorkingDir: '/var/lib/valkey',
      Healthcheck: { Test: ['CMD', 'valkey-cli', 'ping'], Interval: 10e9, Timeout: 3e9, Retries: 3 },
    });
    expect(Object.keys(c.config.Labels)).toEqual(['a', 'b']);
    expect(c.history).toEqual([{ created: '2026-01-01T00:00:00Z', created_by: 'packages' }]);
    // What the registry client and preloading read back.
    expect(parseImageConfig(config('linux/arm64').bytes)).toMatchObject({ architecture: 'arm64', variant: 'v8' });
  });

  it('the same inputs give the same digests; any label change gives another', () => {
    expect(config('linux/amd64').digest).toBe(config('linux/amd64').digest);
    expect(config('linux/amd64', { a: '1', b: '2' }).digest).toBe(config('linux/amd64').digest);
    expect(config('linux/amd64', { a: '1', b: '3' }).digest).not.toBe(config('linux/amd64').digest);
  });

  it('manifest per platform and an index over them, as the lock and dockerd read them', () => {
    const layer = blobOf(Buffer.from('layer'));
    const amd = imageManifest(config('linux/amd64'), [layer]);
    const arm = imageManifest(config('linux/arm64'), [layer]);
    const m = parseManifest(amd.bytes, undefined);
    expect(m.kind).toBe('manifest');
    const index = parseManifest(
      imageIndex([
        { platform: 'linux/amd64', manifest: amd },
        { platform: 'linux/arm64', manifest: arm },
      ]).bytes,
      undefined,
    );
    expect(index.kind === 'index' && index.index.manifests.map((d) => [d.digest, d.platform])).toEqual([
      [amd.digest, { architecture: 'amd64', os: 'linux' }],
      [arm.digest, { architecture: 'arm64', os: 'linux', variant: 'v8' }],
    ]);
  });
});
