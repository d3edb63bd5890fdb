import { readdir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { resolve } from 'node:path';
import { isNotFound } from '../../shared/errors.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { BmapError, readBmapFile, type Bmap } from '../disk/bmap.ts';
import { bmapCandidates, declaredUncompressedSize, detectCompression, spawnDecompressor, type Compression } from './compression.ts';
import type { ImageRangeReader } from './verify.ts';

/** The image to flash, checked: a non-empty regular file, its compression, its bmap and its uncompressed size when known. */
export interface ImageSource {
  path: string;
  /** Device and inode, to recognise the image behind another name (a hard link, a symlink, a loop device). */
  identity: FileIdentity;
  /** Bytes in the file as stored (compressed or not). */
  fileBytes: number;
  compression: Compression;
  bmap?: { path: string; bmap: Bmap; identity: FileIdentity };
  /** The uncompressed size: the file's for a raw image, else the bmap's or the compressed header's; undefined until measured. */
  imageSize?: number;
}

export interface FileIdentity {
  dev: number;
  ino: number;
}

const imageHint = 'give the path of a built image (.img, .img.zst, .img.xz or .img.gz)';

/** Images a directory holds, to point a person who named the directory at the file inside. */
async function imagesIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /\.img(\.(zst|zstd|xz|gz))?$/i.test(n)).sort();
}

async function statImage(path: string, given: string): Promise<Stats> {
  let st: Stats;
  try {
    st = await stat(path);
  } catch (err) {
    if (isNotFound(err)) throw new MemuError(`there is no image ${given}`, ExitCode.badInput, imageHint);
    throw new MemuError(`cannot read the image ${given}: ${(err as Error).message}`, ExitCode.badInput, imageHint);
  }
  if (st.isDirectory()) {
    const inside = await imagesIn(path);
    throw new MemuError(
      `the image ${given} is a directory, not an image file`,
      ExitCode.badInput,
      inside.length > 0 ? `give one of the images in it: ${inside.map((n) => resolve(path, n)).join(', ')}` : imageHint,
    );
  }
  if (!st.isFile()) {
    const what = st.isBlockDevice() ? 'a block device' : st.isCharacterDevice() ? 'a character device' : st.isFIFO() ? 'a pipe' : st.isSocket() ? 'a socket' : 'not a regular file';
    throw new MemuError(`the image ${given} is ${what}, not an image file`, ExitCode.badInput, `${imageHint}; to flash from a stream, save it to a file first`);
  }
  if (st.size === 0) throw emptyImage(given);
  return st;
}

async function resolveBmap(given: string | undefined, imagePath: string, log: Logger): Promise<ImageSource['bmap']> {
  let path: string;
  if (given !== undefined) path = resolve(given);
  else {
    const candidates = bmapCandidates(imagePath);
    const found = (await Promise.all(candidates.map((p) => stat(p).then((s) => s.isFile(), () => false)))).indexOf(true);
    if (found < 0) {
      log.info({ looked: candidates }, 'no bmap beside the image: writing every non-zero block');
      return undefined;
    }
    path = candidates[found]!;
  }
  try {
    const bmap = await readBmapFile(path);
    const st = await stat(path);
    return { path, bmap, identity: { dev: st.dev, ino: st.ino } };
  } catch (err) {
    if (err instanceof BmapError) {
      throw new MemuError(`bad bmap: ${err.message}`, ExitCode.badInput, given !== undefined ? 'pass the .bmap made by the same build as the image' : `remove or replace ${path}, or pass --bmap`);
    }
    throw err;
  }
}

/** A 0-byte image (or one that decompresses to nothing) would "flash" by writing nothing. */
export function emptyImage(given: string): MemuError {
  return new MemuError(`the image ${given} is empty: it holds 0 bytes of disk image`, ExitCode.badInput, 'build or download the image again');
}

function bmapMismatch(bmapPath: string, detail: string): MemuError {
  return new MemuError(`the bmap ${bmapPath} does not match the image: ${detail}`, ExitCode.badInput, 'use the .bmap made by the same build as the image');
}

/**
 * The image's uncompressed size before anything is written, and its agreement with
 * the bmap: a raw image's file size, a compressed image's declared size (zstd frame
 * header, xz index), else the bmap's. A compressed image that declares nothing is
 * checked against the bmap after decompressing, while writing.
 */
async function imageSizeOf(given: string, path: string, fileBytes: number, compression: Compression, bmap: ImageSource['bmap']): Promise<number | undefined> {
  const declared = compression === 'none' ? fileBytes : await declaredUncompressedSize(path, compression);
  if (bmap && declared !== undefined && declared !== bmap.bmap.imageSize) {
    const what = compression === 'none' ? `the image is ${declared} bytes` : `the image's ${compression} header says it decompresses to ${declared} bytes`;
    throw bmapMismatch(bmap.path, `${what}, the bmap says ${bmap.bmap.imageSize}`);
  }
  const size = declared ?? bmap?.bmap.imageSize;
  if (size === 0) throw emptyImage(given);
  return size;
}

/** Inspect: the image exists, is a non-empty regular file, and agrees with its bmap. */
export async function inspectImage(given: string, opts: { bmap?: string; log: Logger }): Promise<ImageSource> {
  const path = resolve(given);
  const st = await statImage(path, given);
  const compression = await detectCompression(path);
  const bmap = await resolveBmap(opts.bmap, path, opts.log);
  const imageSize = await imageSizeOf(given, path, st.size, compression, bmap);
  return { path, identity: { dev: st.dev, ino: st.ino }, fileBytes: st.size, compression, ...(bmap ? { bmap } : {}), ...(imageSize !== undefined ? { imageSize } : {}) };
}

/** Counts the decompressed bytes (only when the size matters and nothing records it). */
export async function measureDecompressedSize(image: ImageSource, signal?: AbortSignal): Promise<number> {
  const { child, exited } = spawnDecompressor(image.path, image.compression as Exclude<Compression, 'none'>);
  const stop = (): void => child.kill('SIGTERM');
  signal?.addEventListener('abort', stop, { once: true });
  try {
    let n = 0;
    for await (const piece of child.stdout as AsyncIterable<Buffer>) n += piece.length;
    await exited;
    if (n === 0) throw emptyImage(image.path);
    return n;
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}

/** Reads a range of a compressed image by decompressing up to it (only to locate a mismatch). */
export function compressedRangeReader(path: string, compression: Exclude<Compression, 'none'>): ImageRangeReader {
  return async (start, length) => {
    const { child, exited } = spawnDecompressor(path, compression);
    const out = Buffer.alloc(length);
    let pos = 0;
    let filled = 0;
    for await (const piece of child.stdout as AsyncIterable<Buffer>) {
      const from = Math.max(start - pos, 0);
      if (from < piece.length) filled += piece.copy(out, filled, from, Math.min(piece.length, from + length - filled));
      pos += piece.length;
      if (filled >= length) break;
    }
    child.kill('SIGTERM');
    await exited.catch(() => {});
    return out.subarray(0, filled);
  };
}
