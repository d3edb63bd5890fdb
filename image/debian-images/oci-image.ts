import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Platform } from '../../shared/contracts/image-lock.ts';
import { fsyncDirectory, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { MediaType, platformParts } from '../oci/manifest.ts';
import { sha256Digest } from '../oci/registry-client.ts';
import type { ImageDefinition } from './definition.ts';

/**
 * The OCI documents of an image: gzip layers, the image config, one manifest per platform
 * and the index over them, written as an OCI image layout (`oci-layout`, `index.json`,
 * `blobs/sha256/…`). Every document is serialized with a fixed key order and times come
 * from SOURCE_DATE_EPOCH, so the same layers give the same digests.
 */

export interface Blob {
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface Layer extends Blob {
  /** sha256 of the uncompressed tar (the config's diff_id). */
  diffId: string;
  /** Size of the uncompressed tar. */
  tarSize: number;
}

export function blobOf(bytes: Buffer): Blob {
  return { digest: sha256Digest(bytes), size: bytes.length, bytes };
}

/**
 * A layer blob: the tar compressed by GNU gzip with `-n` (no name, no time in the header).
 * gzip's deflate output has not changed in decades and does not depend on the CPU, unlike
 * the zlib built into Node (Chromium's fork, which changes with Node releases and picks
 * optimized code by CPU features).
 */
export async function gzipLayer(tar: Buffer): Promise<Layer> {
  const r = await runCommandOutcome('gzip', ['-n', '-6', '-c'], { input: tar });
  if (r.notInstalled) throw new MemuError('missing host tool: gzip (Debian package gzip)', ExitCode.environment, 'run scripts/setup-host');
  if (r.code !== 0) throw new Error(`gzip failed: ${r.stderr.trim()}`);
  return { ...blobOf(r.stdoutBytes), diffId: sha256Digest(tar), tarSize: tar.length };
}

/** `linux/arm64` → the platform object of configs and index entries (arm64 is variant v8). */
export function ociPlatform(platform: Platform): { architecture: string; os: string; variant?: string } {
  const { os, architecture } = platformParts(platform);
  return architecture === 'arm64' ? { architecture, os, variant: 'v8' } : { architecture, os };
}

const NS_PER_S = 1_000_000_000;

export interface ImageConfigInput {
  definition: ImageDefinition;
  platform: Platform;
  layers: { diffId: string; createdBy: string }[];
  /** ISO time of SOURCE_DATE_EPOCH. */
  created: string;
  labels: Record<string, string>;
}

/** The image config (OCI image spec, with Docker's Healthcheck extension, which dockerd reads). */
export function imageConfig(c: ImageConfigInput): Blob {
  const { config, users } = c.definition;
  const user = users.find((u) => u.name === config.user)!;
  const h = config.healthcheck;
  const doc = {
    created: c.created,
    architecture: ociPlatform(c.platform).architecture,
    ...(ociPlatform(c.platform).variant ? { variant: ociPlatform(c.platform).variant } : {}),
    os: 'linux',
    config: {
      User: `${user.uid}:${user.gid}`,
      ...(config.exposedPorts.length ? { ExposedPorts: Object.fromEntries(config.exposedPorts.map((p) => [p, {}])) } : {}),
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...Object.entries(config.env).map(([k, v]) => `${k}=${v}`)],
      Entrypoint: config.entrypoint,
      ...(config.cmd.length ? { Cmd: config.cmd } : {}),
      WorkingDir: config.workingDir,
      Labels: Object.fromEntries(Object.entries(c.labels).sort(([a], [b]) => (a < b ? -1 : 1))),
      ...(config.stopSignal ? { StopSignal: config.stopSignal } : {}),
      ...(h
        ? {
            Healthcheck: {
              Test: h.test,
              Interval: h.intervalSeconds * NS_PER_S,
              Timeout: h.timeoutSeconds * NS_PER_S,
              StartPeriod: h.startPeriodSeconds * NS_PER_S,
              Retries: h.retries,
            },
          }
        : {}),
    },
    rootfs: { type: 'layers', diff_ids: c.layers.map((l) => l.diffId) },
    history: c.layers.map((l) => ({ created: c.created, created_by: l.createdBy })),
  };
  return blobOf(Buffer.from(JSON.stringify(doc)));
}

export function imageManifest(config: Blob, layers: readonly Blob[]): Blob {
  const doc = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: MediaType.ociLayerGzip, digest: l.digest, size: l.size })),
  };
  return blobOf(Buffer.from(JSON.stringify(doc)));
}

export function imageIndex(manifests: { platform: Platform; manifest: Blob }[]): Blob {
  const doc = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: manifests.map((m) => ({ mediaType: MediaType.ociManifest, digest: m.manifest.digest, size: m.manifest.size, platform: ociPlatform(m.platform) })),
  };
  return blobOf(Buffer.from(JSON.stringify(doc)));
}

/**
 * Writes an OCI image layout holding `blobs`, whose index.json names the image index
 * (tagged `tag`). Built beside `dir` and renamed over it, so a reader never sees half.
 */
export async function writeImageLayout(dir: string, index: Blob, blobs: readonly Blob[], tag: string): Promise<void> {
  const staging = `${dir}.tmp-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(join(staging, 'blobs', 'sha256'), { recursive: true });
  for (const b of [...blobs, index]) await writeFile(join(staging, 'blobs', 'sha256', b.digest.slice('sha256:'.length)), b.bytes);
  await writeFile(join(staging, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const top = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ mediaType: MediaType.ociIndex, digest: index.digest, size: index.size, annotations: { 'org.opencontainers.image.ref.name': tag } }] };
  await writeFileAtomic(join(staging, 'index.json'), JSON.stringify(top));
  await mkdir(dirname(dir), { recursive: true });
  const old = `${dir}.old-${process.pid}`;
  const hadOld = await stat(dir).then(() => true, () => false);
  if (hadOld) await rename(dir, old);
  await rename(staging, dir);
  await fsyncDirectory(dirname(dir));
  if (hadOld) await rm(old, { recursive: true, force: true });
}
