import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * What a device downloads when it streams a bundle with RAUC's adaptive updates
 * (`block-hash-index`), worked out on the host from the bundle itself, because a real
 * streaming install needs NBD and dm-verity, which the build machine lacks.
 *
 * RAUC's rule (docs, "Block-based Adaptive Update"): for each 4 KiB block of the new
 * image, the bundle's index gives its SHA-256; a block whose hash is found in either
 * local slot is copied locally, any other is read from the bundle. Reading one 4 KiB
 * block of a file in a squashfs reads the whole compressed squashfs block holding it, so
 * the estimate counts, from the bundle's own squashfs tables (`rdsquashfs --stat`):
 *
 * - every squashfs block of the root image holding at least one block the device lacks,
 *   at its compressed size;
 * - the whole block hash index (RAUC reads all of it);
 * - everything else in the bundle that is not image data (squashfs tables, the verity
 *   hash tree, the signature) in full: an upper bound, a device reads only the part of
 *   the hash tree that covers what it reads;
 * - images without an index (the Pi's boot partition), in full.
 *
 * Not modelled: the kernel's readahead on the streamed block device, which can fetch
 * more than asked for; the end-to-end test in QEMU counts the server's bytes instead.
 */
export interface AdaptiveDownloadEstimate {
  bundleBytes: number;
  downloadBytes: number;
  /** downloadBytes / bundleBytes. */
  ratio: number;
  image: { fileName: string; blocks: number; blocksMissingLocally: number; squashfsBlocks: number; squashfsBlocksFetched: number; fetchedBytes: number };
  hashIndexBytes: number;
  /** Files without an index (the Pi's boot image, RAUC's manifest copy): read whole. */
  wholeFilesBytes: number;
  /** Squashfs tables, verity hash tree and signature. */
  otherBytes: number;
}

const BLOCK = 4096;

export async function estimateAdaptiveDownload(opts: {
  bundle: string;
  /** The slot contents the device already has (the running slot, and the idle one if it holds anything). */
  localSlotImages: string[];
  imageFileName?: string;
}): Promise<AdaptiveDownloadEstimate> {
  const imageName = opts.imageFileName ?? 'rootfs.ext4';
  const indexName = `${imageName}.block-hash-index`;
  // The index RAUC made when it made the bundle, read out of the bundle's squashfs.
  const index = (await rdsquashfs(['--cat', `/${indexName}`, opts.bundle])).bytes;
  if (index.length === 0 || index.length % 32 !== 0) throw new Error(`${indexName} in ${opts.bundle} is ${index.length} bytes, not a list of SHA-256 hashes`);
  const local = new Set<string>();
  for (const slot of opts.localSlotImages) await addBlockHashes(slot, local);
  const missing: number[] = [];
  for (let i = 0; i < index.length / 32; i++) if (!local.has(index.subarray(i * 32, i * 32 + 32).toString('hex'))) missing.push(i);

  const files = await squashfsFiles(opts.bundle);
  const image = files.get(imageName);
  const indexFile = files.get(indexName);
  if (!image || !indexFile) throw new Error(`the bundle's squashfs has no ${image ? indexName : imageName}`);
  const fetched = new Set(missing.map((i) => Math.floor((i * BLOCK) / image.blockSize)));
  const fetchedBytes = [...fetched].reduce((sum, b) => sum + (image.blockBytes[b] ?? image.tailBytes), 0);
  const bundleBytes = (await stat(opts.bundle)).size;
  const hashIndexBytes = indexFile.storedBytes;
  const wholeFilesBytes = [...files].filter(([name]) => name !== imageName && name !== indexName).reduce((sum, [, f]) => sum + f.storedBytes, 0);
  const otherBytes = bundleBytes - image.storedBytes - hashIndexBytes - wholeFilesBytes;
  const downloadBytes = fetchedBytes + hashIndexBytes + wholeFilesBytes + otherBytes;
  return {
    bundleBytes,
    downloadBytes,
    ratio: downloadBytes / bundleBytes,
    image: {
      fileName: imageName,
      blocks: index.length / 32,
      blocksMissingLocally: missing.length,
      squashfsBlocks: image.blockBytes.length,
      squashfsBlocksFetched: fetched.size,
      fetchedBytes,
    },
    hashIndexBytes,
    wholeFilesBytes,
    otherBytes,
  };
}

async function addBlockHashes(path: string, into: Set<string>): Promise<void> {
  let carry = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const data = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    const whole = data.length - (data.length % BLOCK);
    for (let off = 0; off < whole; off += BLOCK) into.add(createHash('sha256').update(data.subarray(off, off + BLOCK)).digest('hex'));
    carry = Buffer.from(data.subarray(whole));
  }
}

interface SquashfsFile {
  blockSize: number;
  /** Stored (compressed) size of each full data block, 0 for a sparse one. */
  blockBytes: number[];
  /** Bytes of the tail kept in a fragment block (counted uncompressed: an upper bound). */
  tailBytes: number;
  storedBytes: number;
}

/** The regular files at the root of a squashfs (the bundle's payload) with their stored block sizes. */
async function squashfsFiles(path: string): Promise<Map<string, SquashfsFile>> {
  // `--describe` prints one line per entry: `file <name> <mode> <uid> <gid>`.
  const names = [...(await rdsquashfs(['--describe', path])).text.matchAll(/^file (\S+) /gm)].map((m) => m[1]!);
  const superblock = (await runCommand('unsquashfs', ['-s', path])).stdout;
  const blockSize = Number(/^Block size (\d+)$/m.exec(superblock)?.[1]);
  if (!blockSize) throw new Error(`unsquashfs -s did not report the block size of ${path}`);
  const files = new Map<string, SquashfsFile>();
  for (const name of names) {
    const { text } = await rdsquashfs(['--stat', `/${name}`, path]);
    const blockBytes = [...text.matchAll(/Block #\d+ size: (\d+)/g)].map((m) => Number(m[1]));
    const size = Number(/File size: (\d+)/.exec(text)?.[1] ?? 0);
    const hasFragment = !/Fragment index: 0xFFFFFFFF/i.test(text);
    // A file's tail shorter than a block sits in a shared fragment block unless it has a block of its own.
    const tailBytes = hasFragment ? size - blockBytes.length * blockSize : 0;
    files.set(name, { blockSize, blockBytes, tailBytes, storedBytes: blockBytes.reduce((a, b) => a + b, 0) + tailBytes });
  }
  return files;
}

async function rdsquashfs(args: string[]): Promise<{ text: string; bytes: Buffer }> {
  const r = await runCommandOutcome('rdsquashfs', args);
  if (r.notInstalled) throw new MemuError('missing host tool: rdsquashfs (Debian package squashfs-tools-ng)', ExitCode.environment, 'apt-get install squashfs-tools-ng');
  if (r.code !== 0) throw new Error(`rdsquashfs ${args.join(' ')} failed: ${r.stderr.trim()}`);
  return { text: r.stdout, bytes: r.stdoutBytes };
}
