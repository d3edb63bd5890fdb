import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../../shared/process/run-command.ts';
import { fsyncDirectory, fsyncFile, removeStaleTemporaryFiles, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { signDetached, type SigningKey } from '../release/signing-keys.ts';
import { hashAndCompress, hashFile } from './file-hash.ts';
import { ARTIFACT_NAME, MANIFEST_NAME, SIGNATURE_NAME, imageManifestSchema, type Artifact, type ImageManifest } from '../release/image-manifest.ts';

export interface ArtifactsResult {
  manifest: ImageManifest;
  files: { image: string; zst: string; bmap: string; manifest: string; signature: string };
}

/** The steps of publication, in order, for crash tests (see writeArtifacts). */
export type PublishPoint = 'old-set-withdrawn' | 'image-moved' | 'zst-moved' | 'bmap-moved' | 'manifest-written' | 'signature-written';

/** Mapped bytes as bmaptool counted them (blocks that hold data). */
export async function bmapMappedBytes(bmapPath: string): Promise<number> {
  const xml = await readFile(bmapPath, 'utf8');
  const blockSize = Number(/<BlockSize>\s*(\d+)\s*<\/BlockSize>/.exec(xml)?.[1]);
  const mapped = Number(/<MappedBlocksCount>\s*(\d+)\s*<\/MappedBlocksCount>/.exec(xml)?.[1]);
  if (!blockSize || Number.isNaN(mapped)) throw new Error(`${bmapPath} is not a bmap file`);
  return blockSize * mapped;
}

/**
 * Stage: artifacts. The raw sparse image, its `.zst` and `.bmap` (made concurrently from
 * the finished image) are made in the work directory and synced; then they are published
 * into the output directory, which holds one set:
 *
 *   1. the old set's signature and manifest are removed (it stops being complete before any
 *      of its files changes), with every artifact the new set does not name;
 *   2. image, .zst and .bmap are moved in by rename;
 *   3. the manifest, then its signature, are written (temporary name, fsync, rename).
 *
 * Several files cannot be swapped in one step without changing where they live, so what
 * holds at every instant instead: a set is complete exactly when manifest and signature
 * are both there (and verify); an interruption anywhere leaves an incomplete set, which
 * `memu verify` reports as such and the next build replaces.
 */
export async function writeArtifacts(opts: {
  workImage: string;
  workDir: string;
  outDir: string;
  baseName: string;
  manifest: Omit<ImageManifest, 'artifacts' | 'sizes'>;
  signingKey: SigningKey;
  /** Crash-test hook, called after each publication step. */
  checkpoint?: (point: PublishPoint) => Promise<void>;
}): Promise<ArtifactsResult> {
  const names = { image: `${opts.baseName}.img`, zst: `${opts.baseName}.img.zst`, bmap: `${opts.baseName}.bmap` };
  const work = { image: opts.workImage, zst: join(opts.workDir, names.zst), bmap: join(opts.workDir, names.bmap) };
  const manifest = await makeArtifacts(work, names, opts.manifest);
  const manifestText = `${JSON.stringify(manifest, null, 2)}\n`;
  const signed = { manifestText, signatureText: signDetached(Buffer.from(manifestText), opts.signingKey) };
  const files = await publishArtifacts(work, names, signed, opts.outDir, opts.checkpoint ?? (async () => {}));
  return { manifest, files };
}

type ArtifactFiles = { image: string; zst: string; bmap: string };

/** The .zst and .bmap of the finished image, all three synced, and the manifest that describes them. */
async function makeArtifacts(work: ArtifactFiles, names: ArtifactFiles, described: Omit<ImageManifest, 'artifacts' | 'sizes'>): Promise<ImageManifest> {
  await Promise.all([rm(work.zst, { force: true }), rm(work.bmap, { force: true })]);
  const [imageHash] = await Promise.all([
    // Level 3: 374 MB in 10 s on the 2-core build machine, against 363 MB in 28 s at level 6.
    hashAndCompress(work.image, work.zst, ['-q', '-3', '-T2']),
    runCommand('bmaptool', ['create', '-o', work.bmap, work.image]),
    // The image's data reaches the disk (before any name published later points at it)
    // while the CPU compresses it.
    fsyncFile(work.image),
  ]);
  await Promise.all([fsyncFile(work.zst), fsyncFile(work.bmap)]);
  const [zstHash, bmapHash] = await Promise.all([hashFile(work.zst), hashFile(work.bmap)]);
  const artifacts: Artifact[] = [
    { name: names.image, role: 'image', ...imageHash },
    { name: names.zst, role: 'image-zst', ...zstHash },
    { name: names.bmap, role: 'bmap', ...bmapHash },
  ];
  return imageManifestSchema.parse({
    ...described,
    sizes: { imageBytes: imageHash.sizeBytes, mappedBytes: await bmapMappedBytes(work.bmap), zstBytes: zstHash.sizeBytes },
    artifacts,
  });
}

/** Publication, in the order writeArtifacts describes. */
async function publishArtifacts(
  work: ArtifactFiles,
  names: ArtifactFiles,
  signed: { manifestText: string; signatureText: string },
  outDir: string,
  checkpoint: (point: PublishPoint) => Promise<void>,
): Promise<ArtifactsResult['files']> {
  const out = {
    image: join(outDir, names.image),
    zst: join(outDir, names.zst),
    bmap: join(outDir, names.bmap),
    manifest: join(outDir, MANIFEST_NAME),
    signature: join(outDir, SIGNATURE_NAME),
  };
  await rm(out.signature, { force: true });
  await rm(out.manifest, { force: true });
  await fsyncDirectory(outDir);
  await removeOrphans(outDir, Object.values(names));
  await checkpoint('old-set-withdrawn');
  for (const role of ['image', 'zst', 'bmap'] as const) {
    await rename(work[role], out[role]);
    await checkpoint(`${role}-moved`);
  }
  await fsyncDirectory(outDir);
  await writeFileAtomic(out.manifest, signed.manifestText);
  await checkpoint('manifest-written');
  await writeFileAtomic(out.signature, signed.signatureText);
  await checkpoint('signature-written');
  return out;
}

/** Artifacts and interrupted manifest writes the set being published does not name. */
async function removeOrphans(outDir: string, keep: string[]): Promise<void> {
  let removed = false;
  for (const name of await readdir(outDir)) {
    if (ARTIFACT_NAME.test(name) && !keep.includes(name)) {
      await rm(join(outDir, name), { force: true });
      removed = true;
    }
  }
  await removeStaleTemporaryFiles(outDir, { only: [MANIFEST_NAME, SIGNATURE_NAME] });
  if (removed) await fsyncDirectory(outDir);
}
