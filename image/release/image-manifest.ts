import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { diskLayoutSchema } from '../../shared/contracts/disk-layout.ts';
import { describeInvalid } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * `manifest.json` beside every built image: what went in (profile, versions, packages,
 * container images), the layout, and the size and sha256 of every artifact. Its detached
 * signature (`manifest.json.sig`) makes the whole set verifiable with `memu verify`.
 */
export const IMAGE_MANIFEST_FORMAT = 'memu-image-manifest/1';
export const MANIFEST_NAME = 'manifest.json';
export const SIGNATURE_NAME = 'manifest.json.sig';
/** What `memu build` names its artifacts: `memu-<profile>-<version>.img`, `.img.zst`, `.bmap`. */
export const ARTIFACT_NAME = /^memu-.+\.(img|img\.zst|bmap)$/;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

export const artifactSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/),
    role: z.enum(['image', 'image-zst', 'bmap']),
    sizeBytes: z.number().int().nonnegative(),
    sha256,
  })
  .strict();
export type Artifact = z.infer<typeof artifactSchema>;

export const imageManifestSchema = z
  .object({
    format: z.literal(IMAGE_MANIFEST_FORMAT),
    product: z.literal('memu-os'),
    version: z.string(),
    profile: z.string(),
    arch: z.enum(['amd64', 'arm64']),
    sourceDateEpoch: z.number().int(),
    rootfs: z.object({ key: z.string(), suite: z.string(), mirror: z.string() }).strict(),
    kernel: z.string(),
    agent: z.object({ version: z.string(), sha256 }).strict(),
    layout: diskLayoutSchema,
    packages: z.array(z.object({ name: z.string(), version: z.string(), arch: z.string() }).strict()),
    /** Set when the build installed exactly the package versions of an earlier build (`--packages-from`). */
    packagesPinnedFrom: z.object({ version: z.string(), manifestSha256: sha256 }).strict().optional(),
    containerImages: z.array(z.object({ service: z.string(), reference: z.string(), digest: z.string() }).strict()),
    /** The CA the image's RAUC trusts for OS updates (optional: manifests made before it was recorded still read). */
    raucKeyring: z
      .object({
        source: z.enum(['release', 'development']),
        certificates: z.array(z.object({ subject: z.string(), sha256Fingerprint: z.string(), notAfter: z.string() }).strict()).min(1),
      })
      .strict()
      .optional(),
    sizes: z.object({ imageBytes: z.number().int(), mappedBytes: z.number().int(), zstBytes: z.number().int() }).strict(),
    artifacts: z.array(artifactSchema).min(1),
  })
  .strict();
export type ImageManifest = z.infer<typeof imageManifestSchema>;

/** Reads and validates a manifest file given as input (`--packages-from`); bad input is exit 2 with the reason. */
export async function readImageManifest(path: string): Promise<{ manifest: ImageManifest; sha256: string }> {
  const hint = `name the ${MANIFEST_NAME} of an earlier \`memu build\``;
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new MemuError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, ExitCode.badInput, hint);
  }
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new MemuError(`${path} is not JSON: ${(err as Error).message}`, ExitCode.badInput, hint);
  }
  const parsed = imageManifestSchema.safeParse(data);
  if (!parsed.success) throw new MemuError(describeInvalid(`image manifest ${path}`, parsed.error.issues), ExitCode.badInput, hint);
  return { manifest: parsed.data, sha256: createHash('sha256').update(bytes).digest('hex') };
}
