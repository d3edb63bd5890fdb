import { z } from 'zod';
import { describeInvalid } from '../../shared/errors.ts';

/** Manifest and layer media types of the OCI image spec and Docker's schema 2. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
/** Sent as `Accept` so registries return schema 2 / OCI instead of the legacy schema 1. */
export const MANIFEST_ACCEPT = [...INDEX_MEDIA_TYPES, ...MANIFEST_MEDIA_TYPES].join(', ');
/** Layer types dockerd can unpack (gzip and zstd since Docker 20.10). */
const LOADABLE_LAYER_TYPES: readonly string[] = [
  MediaType.ociLayerGzip,
  MediaType.ociLayerZstd,
  MediaType.ociLayerTar,
  MediaType.dockerLayerGzip,
];

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const descriptorSchema = z.object({
  mediaType: z.string(),
  digest,
  size: z.number().int().nonnegative(),
  platform: z
    .object({ os: z.string(), architecture: z.string(), variant: z.string().optional() })
    .passthrough()
    .optional(),
  annotations: z.record(z.string()).optional(),
});
export type Descriptor = z.infer<typeof descriptorSchema>;

const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
});
const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});
export type ImageIndex = z.infer<typeof indexSchema>;
export type ImageManifest = z.infer<typeof imageManifestSchema>;

const imageConfigSchema = z
  .object({
    architecture: z.string(),
    os: z.string(),
    variant: z.string().optional(),
    rootfs: z.object({ type: z.literal('layers'), diff_ids: z.array(digest) }),
  })
  .passthrough();
export type ImageConfig = z.infer<typeof imageConfigSchema>;

export type ParsedManifest =
  | { kind: 'index'; mediaType: string; index: ImageIndex }
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest };

/**
 * Parses manifest bytes as an index or an image manifest. The media type comes from
 * the body when present (OCI makes it optional), else from the Content-Type header.
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error('manifest is not valid JSON');
  }
  const body = json as { mediaType?: unknown; manifests?: unknown; schemaVersion?: unknown };
  const mediaType =
    (typeof body.mediaType === 'string' && body.mediaType) ||
    contentType?.split(';')[0]?.trim() ||
    (Array.isArray(body.manifests) ? MediaType.ociIndex : MediaType.ociManifest);
  if (body.schemaVersion === 1) {
    throw new Error('manifest is Docker schema 1 (deprecated, unsupported); republish the image with a current Docker or buildkit');
  }
  if (INDEX_MEDIA_TYPES.includes(mediaType) || (Array.isArray(body.manifests) && !MANIFEST_MEDIA_TYPES.includes(mediaType))) {
    const r = indexSchema.safeParse(json);
    if (!r.success) throw new Error(describeInvalid('the image index', r.error.issues));
    return { kind: 'index', mediaType, index: r.data };
  }
  if (MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    const r = imageManifestSchema.safeParse(json);
    if (!r.success) throw new Error(describeInvalid('the image manifest', r.error.issues));
    return { kind: 'manifest', mediaType, manifest: r.data };
  }
  throw new Error(`unsupported manifest media type ${mediaType}`);
}

export function parseImageConfig(bytes: Buffer): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error('image config is not valid JSON');
  }
  const r = imageConfigSchema.safeParse(json);
  if (!r.success) throw new Error(describeInvalid('the image config', r.error.issues));
  return r.data;
}

export function assertLoadableLayers(manifest: ImageManifest): void {
  for (const layer of manifest.layers) {
    if (!LOADABLE_LAYER_TYPES.includes(layer.mediaType)) {
      throw new Error(`layer ${layer.digest} has media type ${layer.mediaType}, which dockerd cannot load`);
    }
  }
}

/** `linux/arm64` → os and architecture; arm64 variants (`v8`) all match. */
export function platformParts(platform: string): { os: string; architecture: string } {
  const [os, architecture] = platform.split('/');
  if (!os || !architecture) throw new Error(`bad platform "${platform}": expected os/arch, e.g. linux/arm64`);
  return { os, architecture };
}

/** The manifest descriptor for a platform in an index, skipping attestation manifests. */
export function selectPlatform(index: ImageIndex, platform: string): Descriptor | undefined {
  const want = platformParts(platform);
  return index.manifests.find(
    (m) =>
      m.platform?.os === want.os &&
      m.platform.architecture === want.architecture &&
      m.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest',
  );
}

/** The platforms an index offers, for error messages. */
export function listPlatforms(index: ImageIndex): string[] {
  return index.manifests
    .filter((m) => m.platform && m.platform.os !== 'unknown')
    .map((m) => `${m.platform!.os}/${m.platform!.architecture}${m.platform!.variant ? `/${m.platform!.variant}` : ''}`);
}
