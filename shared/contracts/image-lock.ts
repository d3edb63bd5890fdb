import { z } from 'zod';

/**
 * The image lock (`compose/images.lock.json`): every image the stack's compose files
 * name by tag, pinned to content digests per platform. `memu stack lock` writes it; the
 * build preloads exactly these digests; the agent runs exactly these digests. A tag
 * that is not in the lock is refused, so nothing floats.
 */
export const IMAGE_LOCK_FORMAT = 'memu-image-lock/1';

export const PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
export type Platform = (typeof PLATFORMS)[number];

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>');

export const lockedImageSchema = z
  .object({
    /** Digest of the multi-platform index (manifest list), when the image has one. */
    index: digest.optional(),
    /** Digest of the single-platform image manifest, per platform. */
    platforms: z.record(z.enum(PLATFORMS), digest),
  })
  .strict();

export const imageLockSchema = z
  .object({
    format: z.literal(IMAGE_LOCK_FORMAT),
    /** Keys are image references exactly as written in the compose files (`repo:tag`). */
    images: z.record(z.string().min(1), lockedImageSchema),
  })
  .strict();

export type LockedImage = z.infer<typeof lockedImageSchema>;
export type ImageLock = z.infer<typeof imageLockSchema>;

/** `repo@sha256:…` for one platform, or an error naming the reference and platform. */
export function pinnedReference(lock: ImageLock, reference: string, platform: Platform): string {
  const entry = lock.images[reference];
  if (!entry) throw new Error(`image ${reference} is not in the image lock; run \`memu stack lock\``);
  const d = entry.platforms[platform];
  if (!d) throw new Error(`image ${reference} has no ${platform} digest in the image lock`);
  const repo = reference.replace(/(:[^/:@]+)?(@sha256:[0-9a-f]{64})?$/, '');
  return `${repo}@${d}`;
}
