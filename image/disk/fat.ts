import { lstat, readdir, utimes } from 'node:fs/promises';
import type { PartitionTarget } from './assemble.ts';
import { join } from 'node:path';
import { runCommand } from '../../shared/process/run-command.ts';

/**
 * Makes a FAT filesystem inside a disk image at a partition's offset with mkfs.vfat and fills it with mtools
 * (no mount), reproducibly: `--invariant` and a fixed volume ID, files added in sorted
 * order with their modification times pinned to the epoch (mtools keeps them with -m).
 */
export async function makeFat(opts: { target: PartitionTarget; volumeId: string; label: string; sourceDir: string; epoch: number }): Promise<void> {
  const { file, offsetBytes, sizeBytes } = opts.target;
  const { fatBits, sectorsPerCluster } = fatGeometry(sizeBytes);
  await runCommand('mkfs.vfat', ['--invariant', '-i', opts.volumeId, '-n', opts.label.toUpperCase().slice(0, 11), '-F', String(fatBits), '-S', '512', '-s', String(sectorsPerCluster), `--offset=${offsetBytes / 512}`, file, String(Math.floor(sizeBytes / 1024))]);
  const image = `${file}@@${offsetBytes}`;
  // FAT stores local time; UTC makes the result independent of the build host's zone.
  const env = { TZ: 'UTC', MTOOLS_SKIP_CHECK: '1', SOURCE_DATE_EPOCH: String(opts.epoch) };
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(opts.sourceDir, rel))).sort()) {
      const relPath = rel ? `${rel}/${name}` : name;
      const full = join(opts.sourceDir, relPath);
      const st = await lstat(full);
      if (st.isDirectory()) {
        await runCommand('mmd', ['-i', image, `::/${relPath}`], { env });
        await walk(relPath);
      } else if (st.isFile()) {
        await utimes(full, opts.epoch, opts.epoch);
        await runCommand('mcopy', ['-i', image, '-m', '-o', full, `::/${relPath}`], { env });
      } else {
        throw new Error(`${full}: FAT partitions hold only plain files and directories`);
      }
    }
  };
  await walk('');
}

/**
 * FAT32 for partitions of 128 MiB and more (what UEFI firmware prefers for an ESP), with
 * clusters small enough to stay well above FAT32's 65525-cluster minimum: below it, readers
 * such as mtools take the volume for FAT16 and fail. FAT16 for small partitions.
 */
export function fatGeometry(sizeBytes: number): { fatBits: 16 | 32; sectorsPerCluster: number } {
  const sectors = Math.floor(sizeBytes / 512);
  if (sizeBytes < 128 * 1024 * 1024) return { fatBits: 16, sectorsPerCluster: 4 };
  let spc = 8;
  while (spc > 1 && sectors / spc < 70_000) spc /= 2;
  return { fatBits: 32, sectorsPerCluster: spc };
}
