import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { temporaryNameFor } from '../../shared/files/durable-files.ts';
import { RegistryError, sha256Digest, type RegistryClient, type RepositoryRef } from './registry-client.ts';

function hexOf(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1]!;
}

/**
 * Content-addressed store of verified manifests and blobs (`DIR/sha256/<hex>`, the
 * layout of an OCI image layout's `blobs/`). A file exists only once its content was
 * checked against its digest, so a hit needs no network and no re-check.
 */
export class BlobCache {
  /** Bytes fetched from registries by this instance. */
  downloadedBytes = 0;

  constructor(readonly dir: string) {}

  path(digest: string): string {
    return join(this.dir, 'sha256', hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    return stat(this.path(digest)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** Reads a small blob (manifest, config) and re-checks it, so a damaged cache cannot pass. */
  async read(digest: string): Promise<Buffer> {
    const bytes = await readFile(this.path(digest));
    if (sha256Digest(bytes) !== digest) {
      await unlink(this.path(digest)).catch(() => {});
      throw new Error(`cached blob ${digest} in ${this.dir} was damaged (removed it; run again to fetch it anew)`);
    }
    return bytes;
  }

  async putBytes(digest: string, bytes: Buffer): Promise<void> {
    if (sha256Digest(bytes) !== digest) throw new Error(`refusing to cache content as ${digest}: its digest is ${sha256Digest(bytes)}`);
    await this.commit(digest, async (tmp) => {
      const fd = await open(tmp, 'w', 0o644);
      try {
        await fd.writeFile(bytes);
        await fd.sync();
      } finally {
        await fd.close();
      }
    });
  }

  /**
   * Returns the cached path of a blob, downloading it first when missing. The download
   * streams to a temporary file while hashing; a digest or size mismatch deletes it.
   */
  async fetch(
    client: RegistryClient,
    ref: RepositoryRef,
    descriptor: { digest: string; size?: number },
    onBytes?: (n: number) => void,
  ): Promise<string> {
    const { digest, size } = descriptor;
    if (await this.has(digest)) return this.path(digest);
    const { body } = await client.openBlob(ref, digest);
    const hash = createHash('sha256');
    let received = 0;
    await this.commit(digest, async (tmp) => {
      const source = Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
      source.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
        onBytes?.(chunk.length);
      });
      const out = createWriteStream(tmp, { mode: 0o644 });
      await pipeline(source, out);
      const fd = await open(tmp, 'r');
      await fd.sync().finally(() => fd.close());
      this.downloadedBytes += received;
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== digest) {
        throw new RegistryError(
          `digest mismatch for blob ${digest} of ${ref.registry}/${ref.repository}: received content has digest ${actual}`,
          'digest-mismatch',
        );
      }
      if (size !== undefined && received !== size) {
        throw new RegistryError(`blob ${digest} of ${ref.registry}/${ref.repository}: expected ${size} bytes, received ${received}`, 'digest-mismatch');
      }
    });
    return this.path(digest);
  }

  /** Writes through a temporary name and renames into place only if `write` succeeds. */
  private async commit(digest: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const final = this.path(digest);
    await mkdir(join(this.dir, 'sha256'), { recursive: true });
    const tmp = temporaryNameFor(final);
    try {
      await write(tmp);
      await rename(tmp, final);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }
}
