import { open } from 'node:fs/promises';
import type { DiskLayout } from '../../shared/contracts/disk-layout.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { sfdiskScript } from './layout.ts';

/**
 * Stage 5a: the disk. A sparse file of the image size with a GPT written by sfdisk: no
 * loop device, no kernel involvement. The filesystems are then made directly inside it at
 * their partition offsets, so nothing is copied and untouched space stays a hole (and
 * unmapped in the bmap) — root B ships that way.
 */
export async function createDisk(file: string, layout: DiskLayout): Promise<void> {
  const fd = await open(file, 'w');
  try {
    await fd.truncate(layout.imageSizeBytes);
  } finally {
    await fd.close();
  }
  await runCommand('sfdisk', ['--no-reread', '--no-tell-kernel', '--wipe', 'never', '--wipe-partitions', 'never', '--quiet', file], { input: sfdiskScript(layout) });
}

/** A partition inside a disk image file, as the e2fsprogs tools and mtools address it. */
export interface PartitionTarget {
  file: string;
  offsetBytes: number;
  sizeBytes: number;
}
