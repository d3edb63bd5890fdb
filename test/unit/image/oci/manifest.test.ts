import { describe, expect, it } from 'vitest';
import { listPlatforms, MediaType, parseImageConfig, parseManifest, selectPlatform } from '../../../../image/oci/manifest.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const json = (o: unknown) => Buffer.from(JSON.stringify(o));

const dockerList = {
  schemaVersion: 2,
  mediaType: MediaType.dockerManifestList,
  manifests: [
    { mediaType: MediaType.dockerManifest, digest: d('1'), size: 10, platform: { os: 'linux', architecture: 'amd64' } },
    { mediaType: MediaType.dockerManifest, digest: d('2'), size: 10, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { mediaType: MediaType.dockerManifest, digest: d('3'), size: 10, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
  ],
};

describe('parseManifest', () => {
  it('accepts Docker manifest lists and OCI indexes', () => {
    expect(parseManifest(json(dockerList), undefined).kind).toBe('index');
    const { mediaType: _m, ...bare } = dockerList;
    expect(parseManifest(json(bare), MediaType.ociIndex)).toMatchObject({ kind: 'index', mediaType: MediaType.ociIndex });
  });

  it('accepts Docker schema 2 and OCI image manifests', () => {
    const m = { schemaVersion: 2, config: { mediaType: MediaType.ociConfig, digest: d('c'), size: 5 }, layers: [{ mediaType: MediaType.ociLayerGzip, digest: d('f'), size: 9 }] };
    expect(parseManifest(json({ ...m, mediaType: MediaType.dockerManifest }), undefined)).toMatchObject({ kind: 'manifest', mediaType: MediaType.dockerManifest });
    expect(parseManifest(json(m), `${MediaType.ociManifest}; charset=utf-8`)).toMatchObject({ kind: 'manifest', mediaType: MediaType.ociManifest });
  });

  it('refuses schema 1, unknown types and garbage with a reason', () => {
    expect(() => parseManifest(json({ schemaVersion: 1, fsLayers: [] }), undefined)).toThrow(/schema 1/);
    expect(() => parseManifest(json({ schemaVersion: 2 }), 'application/vnd.example+json')).toThrow(/unsupported manifest media type/);
    expect(() => parseManifest(Buffer.from('<html>'), undefined)).toThrow(/not valid JSON/);
  });
});

describe('platform selection', () => {
  it('picks linux/arm64 whatever its variant, and reports what exists', () => {
    const parsed = parseManifest(json(dockerList), undefined);
    if (parsed.kind !== 'index') throw new Error('expected an index');
    const { index } = parsed;
    expect(selectPlatform(index, 'linux/arm64')?.digest).toBe(d('3'));
    expect(selectPlatform(index, 'linux/riscv64')).toBeUndefined();
    expect(listPlatforms(index)).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64/v8']);
  });

  it('never picks a buildkit attestation manifest', () => {
    const idx = {
      schemaVersion: 2 as const,
      manifests: [
        { mediaType: MediaType.ociManifest, digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
        { mediaType: MediaType.ociManifest, digest: d('b'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      ],
    };
    expect(selectPlatform(idx, 'linux/amd64')?.digest).toBe(d('b'));
  });
});

describe('parseImageConfig', () => {
  it('requires the platform and the layer diff ids', () => {
    const c = parseImageConfig(json({ architecture: 'arm64', os: 'linux', rootfs: { type: 'layers', diff_ids: [d('e')] }, config: {} }));
    expect(c.rootfs.diff_ids).toHaveLength(1);
    expect(() => parseImageConfig(json({ os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))).toThrow(/architecture/);
  });
});
