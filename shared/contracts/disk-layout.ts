import { z } from 'zod';

/**
 * The disk layout as built, written into every root filesystem at `/etc/memu/layout.json`.
 * The agent finds its partitions (data to grow, FAT for the preseed, the idle root slot
 * for updates) from this file instead of guessing device names. The layout is chosen once
 * and must last the product's life: only add fields.
 */
export const DISK_LAYOUT_FORMAT = 'memu-disk-layout/1';
export const DISK_LAYOUT_PATH = '/etc/memu/layout.json';

export const layoutPartitionSchema = z
  .object({
    number: z.number().int().positive(),
    role: z.enum(['esp', 'bootconfig', 'boot-a', 'boot-b', 'root-a', 'root-b', 'data']),
    label: z.string(),
    partUuid: z.string().uuid(),
    typeGuid: z.string(),
    filesystem: z.enum(['vfat', 'ext4']),
    /** ext4 UUID or FAT volume ID as the kernel shows it (`/dev/disk/by-uuid`). */
    fsUuid: z.string(),
    startBytes: z.number().int().nonnegative(),
    sizeBytes: z.number().int().positive(),
  })
  .strict();

export const diskLayoutSchema = z
  .object({
    format: z.literal(DISK_LAYOUT_FORMAT),
    profile: z.string(),
    diskGuid: z.string().uuid(),
    sectorSize: z.literal(512),
    imageSizeBytes: z.number().int().positive(),
    partitions: z.array(layoutPartitionSchema),
  })
  .strict();

export type DiskLayout = z.infer<typeof diskLayoutSchema>;
export type LayoutPartition = z.infer<typeof layoutPartitionSchema>;
