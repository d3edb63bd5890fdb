import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/files/durable-files.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import { ignoreNotFound } from '../../shared/errors.ts';


/**
 * Direct edits of a stopped dockerd's overlay2 data-root, in the on-disk formats that
 * Docker 20.10 (build host, Debian bookworm) and 26.x (device, Debian trixie) share:
 *
 * - `image/overlay2/repositories.json`: `{"Repositories": {familiar name: {familiar ref: image id}}}`
 * - `image/overlay2/distribution/diffid-by-digest/sha256/<blob hex>`: the layer's diff id
 * - `image/overlay2/distribution/v2metadata-by-diffid/sha256/<diff hex>`: JSON
 *   `[{"Digest", "SourceRepository", "HMAC"}]`, which lets a later pull skip layers it has.
 *
 * These are what `docker pull` writes and `docker load` does not; writing them makes a
 * loaded image look pulled. The daemon must not be running while they change.
 */
export function imageMetadataDir(dataRoot: string): string {
  return join(dataRoot, 'image', 'overlay2');
}

/** Adds references (`name@sha256:…` or `name:tag`, familiar form) pointing at an image id. */
export async function addReferences(dataRoot: string, refs: { name: string; reference: string; imageId: string }[]): Promise<void> {
  const path = join(imageMetadataDir(dataRoot), 'repositories.json');
  const text = (await readFile(path, 'utf8').catch(ignoreNotFound)) ?? '{"Repositories":{}}';
  const store = JSON.parse(text) as { Repositories?: Record<string, Record<string, string>> };
  const repos = (store.Repositories ??= {});
  for (const { name, reference, imageId } of refs) (repos[name] ??= {})[reference] = imageId;
  await writeFileAtomic(path, JSON.stringify(store), { mode: 0o600 });
}

export interface LayerSource {
  /** Compressed blob digest as served by the registry. */
  blobDigest: string;
  diffId: string;
  /** Fully qualified repository the blob can be pulled from: `docker.io/library/nginx`. */
  sourceRepository: string;
}

export async function addDistributionMetadata(dataRoot: string, layers: LayerSource[]): Promise<void> {
  const base = join(imageMetadataDir(dataRoot), 'distribution');
  const byDigest = join(base, 'diffid-by-digest', 'sha256');
  const byDiffId = join(base, 'v2metadata-by-diffid', 'sha256');
  await mkdir(byDigest, { recursive: true });
  await mkdir(byDiffId, { recursive: true });
  for (const l of layers) {
    await writeFile(join(byDigest, l.blobDigest.slice('sha256:'.length)), l.diffId, { mode: 0o644 });
    const metaPath = join(byDiffId, l.diffId.slice('sha256:'.length));
    const existing = JSON.parse(await readFile(metaPath, 'utf8').catch(() => '[]')) as { Digest: string; SourceRepository: string; HMAC: string }[];
    if (!existing.some((e) => e.Digest === l.blobDigest && e.SourceRepository === l.sourceRepository)) {
      existing.push({ Digest: l.blobDigest, SourceRepository: l.sourceRepository, HMAC: '' });
      await writeFile(metaPath, JSON.stringify(existing), { mode: 0o644 });
    }
  }
}

/**
 * Removes what a daemon run leaves besides images (its containerd state, network and
 * swarm stores, buildkit and plugin dirs, empty containers/volumes, quota device nodes): the device's own
 * daemon creates them fresh, with its own settings, on first start.
 */
export async function removeRuntimeState(dataRoot: string): Promise<void> {
  for (const dir of ['buildkit', 'containerd', 'network', 'plugins', 'runtimes', 'swarm', 'tmp', 'trust']) {
    await rm(join(dataRoot, dir), { recursive: true, force: true });
  }
  const containers = await readdir(join(dataRoot, 'containers')).catch(() => undefined);
  if (containers && containers.length === 0) await rm(join(dataRoot, 'containers'), { recursive: true, force: true });
  // backingFsBlockDev is a device node for the build host's disk: meaningless on the device.
  const volumes = await readdir(join(dataRoot, 'volumes')).catch(() => undefined);
  if (volumes && volumes.every((v) => v === 'metadata.db' || v === 'backingFsBlockDev')) {
    await rm(join(dataRoot, 'volumes'), { recursive: true, force: true });
  }
  await rm(join(dataRoot, 'overlay2', 'backingFsBlockDev'), { force: true });
}

/** Sum of the unpacked sizes dockerd recorded for every layer in the store. */
export async function unpackedLayerBytes(dataRoot: string): Promise<number> {
  const layerdb = join(imageMetadataDir(dataRoot), 'layerdb', 'sha256');
  const chains = await readdir(layerdb).catch(() => [] as string[]);
  let total = 0;
  for (const c of chains) {
    const size = Number((await readFile(join(layerdb, c, 'size'), 'utf8').catch(() => '0')).trim());
    if (Number.isFinite(size)) total += size;
  }
  return total;
}

/** Disk space the directory tree occupies (allocated blocks), as `du` counts it. */
export async function diskUsageBytes(dir: string): Promise<number> {
  await stat(dir);
  const { stdout } = await runCommand('du', ['-s', '-B1', '-x', dir]);
  return Number(stdout.split(/\s/)[0]);
}
