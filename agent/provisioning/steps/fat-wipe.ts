import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { mountedNodes, openFatVolume } from '../../../shared/fat/fat-volume.ts';
import { fsyncFile } from '../../../shared/files/durable-files.ts';

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
function fillWithMtools(image: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mcopy', ['-i', image, '-', `::/${WIPE_FILE_NAME}`], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
    });
    const zeros = createReadStream('/dev/zero', { highWaterMark: 1 << 20 });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin!.on('error', () => {}); // EPIPE once mcopy stops reading at "disk full"
    zeros.pipe(child.stdin!);
    child.on('error', (err) => {
      zeros.destroy();
      reject(err);
    });
    child.on('close', (code) => {
      zeros.destroy();
      if (code === 0 || /No space left|Disk full|No free cluster/i.test(stderr)) resolve();
      else reject(new Error(`mcopy could not fill the FAT's free space: ${stderr.trim().split('\n').pop() ?? `exit ${code}`}`));
    });
  });
}

