import { mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobCache } from '../oci/blob-cache.ts';
import { MediaType } from '../oci/manifest.ts';
import type { CachedImage } from '../oci/resolve.ts';
import { startProcess, type StartedProcess } from '../../shared/process/run-command.ts';

/** One image to put in an archive: its cached blobs and the names it should carry. */
export interface ArchiveImage {
  image: CachedImage;
  /** `repo:tag` in familiar form (`nginx:1.27`, `ghcr.io/x/y:2`), when the reference has a tag. */
  repoTag?: string;
  /** Fully qualified name for the OCI index annotation: `docker.io/library/nginx:1.27`. */
  fullReference: string;
}

/**
 * Lays out the Docker ≥ 25 `docker save` format in `dir`: an OCI image layout
 * (`oci-layout`, `index.json`, `blobs/sha256/…`) plus Docker's `manifest.json`, which
 * every dockerd since 1.10 loads. Blobs are symlinks into the cache (no copies); the
 * tar step dereferences them. Layers stay compressed: dockerd decompresses on load.
 */
export async function stageImageArchive(dir: string, cache: BlobCache, images: ArchiveImage[]): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const linked = new Set<string>();
  const link = async (digest: string) => {
    if (linked.has(digest)) return;
    linked.add(digest);
    await symlink(cache.path(digest), join(blobs, digest.slice('sha256:'.length)));
  };
  const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
  const dockerManifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const index: { schemaVersion: 2; mediaType: string; manifests: unknown[] } = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  for (const { image, repoTag, fullReference } of images) {
    await link(image.manifestDigest);
    await link(image.configDigest);
    for (const l of image.layers) await link(l.digest);
    dockerManifest.push({
      Config: blobPath(image.configDigest),
      RepoTags: repoTag ? [repoTag] : null,
      Layers: image.layers.map((l) => blobPath(l.digest)),
    });
    const tag = repoTag ? repoTag.slice(repoTag.lastIndexOf(':') + 1) : undefined;
    index.manifests.push({
      mediaType: image.manifestMediaType,
      digest: image.manifestDigest,
      size: (await stat(cache.path(image.manifestDigest))).size,
      annotations: { 'io.containerd.image.name': fullReference, ...(tag ? { 'org.opencontainers.image.ref.name': tag } : {}) },
    });
  }
  await writeFile(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(dockerManifest));
}

/**
 * `tar` of a staged archive on stdout: symlinks dereferenced, names sorted, owners and
 * times fixed, so the same images always give the same bytes.
 */
export function spawnArchiveTar(dir: string): StartedProcess {
  return startProcess('tar', ['--dereference', '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=gnu', '-C', dir, '-cf', '-', 'oci-layout', 'index.json', 'manifest.json', 'blobs']);
}
