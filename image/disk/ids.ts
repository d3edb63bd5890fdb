import { createHash } from 'node:crypto';

/**
 * Identifiers derived from a seed, so the same inputs give the same disk: GUIDs of the
 * disk and partitions, filesystem UUIDs, the ext4 directory hash seed, the FAT volume ID.
 * Every unit flashed from one image shares them, as with any flashed image.
 */
function digest(seed: string, purpose: string): Buffer {
  return createHash('sha256').update(`memu:${seed}:${purpose}`).digest();
}

/** An RFC 4122 version-4-shaped UUID (upper case for GPT tools, lower case for filesystems). */
export function derivedUuid(seed: string, purpose: string): string {
  const b = digest(seed, purpose).subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A 32-bit FAT volume serial as 8 hex digits. */
export function derivedFatVolumeId(seed: string, purpose: string): string {
  return digest(seed, purpose).subarray(0, 4).toString('hex');
}
