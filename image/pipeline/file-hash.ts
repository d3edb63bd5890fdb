import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { startProcess } from '../../shared/process/run-command.ts';

/** sha256 and size of a file, read in 4 MiB chunks. */
export async function hashFile(path: string, onBytes?: (done: number) => void): Promise<{ sha256: string; sizeBytes: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
    onBytes?.(size);
  }
  return { sha256: hash.digest('hex'), sizeBytes: size };
}

/**
 * Hashes a file and compresses it with zstd in one read pass (the image is read once, not
 * twice): chunks go to the hash and to zstd's stdin, respecting its back-pressure. The
 * size is given to zstd (`--stream-size`), so the frame header records the uncompressed
 * size, as it does when zstd reads a file itself, and a reader can check it up front.
 */
export async function hashAndCompress(path: string, zstOut: string, zstdArgs: string[]): Promise<{ sha256: string; sizeBytes: number }> {
  const expected = (await stat(path)).size;
  const { child: zstd, ended } = startProcess('zstd', [...zstdArgs, `--stream-size=${expected}`, '-o', zstOut], { stdin: 'pipe', stdout: 'ignore' });
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (!zstd.stdin!.write(chunk)) await once(zstd.stdin!, 'drain');
    }
  } finally {
    zstd.stdin!.end();
  }
  const r = await ended;
  if (r.code !== 0) throw new Error(`zstd failed (${r.startError ?? r.signal ?? `exit ${r.code}`}): ${r.stderr.trim()}`);
  return { sha256: hash.digest('hex'), sizeBytes: size };
}
