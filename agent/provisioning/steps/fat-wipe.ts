import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { mountedNodes, openFatVolume } from '../../../shared/fat/fat-volume.ts';
import { fsyncFile } from '../../../shared/files/durable-files.ts';
import { startProcess } from '../../../shared/process/run-command.ts';

/**
 * FAT frees a deleted file's clusters without clearing them, so after the scrub the old
 * preseed bytes (passphrase, auth key, claim code) are still on the partition, readable
 * by anyone who images the SD card or NVMe drive. This overwrites all free space: one
 * file of zeros until the FAT is full, synced, then deleted (what `sfill`/zerofree do).
 * A crash in between leaves the file; the next run deletes it first.
 */
export const WIPE_FILE_NAME = 'MEMUWIPE.TMP';

export async function wipeFatFreeSpace(device: string, log: Logger, checkpoint?: (point: string) => Promise<void>): Promise<'wiped' | 'skipped'> {
  const volume = await openFatVolume(device);
  await volume.removeFile(WIPE_FILE_NAME);
  const location = volume.location;
  const started = Date.now();
  if (!location) {
    // A mounted FAT (a directory): ordinary writes until ENOSPC.
    const path = join(device, WIPE_FILE_NAME);
    await pipeline(createReadStream('/dev/zero'), createWriteStream(path)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOSPC') throw err;
    });
    await fsyncFile(path);
    await checkpoint?.('after-fill');
    await unlink(path);
    await fsyncFile(device);
  } else {
    const mounted = await mountedNodes(location.target);
    if (mounted.some((m) => m.path === location.target || m.path === location.node)) {
      log.warn({ device }, 'the FAT partition is mounted; its free space was not wiped');
      return 'skipped';
    }
    await fillWithMtools(`${location.target}@@${location.offset}`);
    await fsyncFile(location.target);
    await checkpoint?.('after-fill');
    await volume.removeFile(WIPE_FILE_NAME); // mdel + sync
  }
  log.info({ ms: Date.now() - started }, 'free space of the FAT partition overwritten');
  return 'wiped';
}

/** mcopy from /dev/zero: mtools stops at "disk full" and keeps what it wrote (exit 0). */
async function fillWithMtools(image: string): Promise<void> {
  const { child, ended } = startProcess('mcopy', ['-i', image, '-', `::/${WIPE_FILE_NAME}`], { stdin: 'pipe', stdout: 'ignore', env: { MTOOLS_SKIP_CHECK: '1' } });
  const zeros = createReadStream('/dev/zero', { highWaterMark: 1 << 20 });
  zeros.pipe(child.stdin!);
  const r = await ended;
  zeros.destroy();
  if (r.code === 0 || /No space left|Disk full|No free cluster/i.test(r.stderr)) return;
  throw new Error(`mcopy could not fill the FAT's free space: ${r.startError ?? r.stderr.trim().split('\n').pop() ?? `exit ${r.code}`}`);
}

