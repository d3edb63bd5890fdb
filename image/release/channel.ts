import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CHANNEL_INDEX_FORMAT,
  CHANNEL_INDEX_NAME,
  channelIndexSchema,
  compareVersions,
  type ChannelIndex,
} from '../../shared/contracts/release-manifest.ts';
import { describeInvalid, ignoreNotFound } from '../../shared/errors.ts';
import { fsyncDirectory, removeStaleTemporaryFiles, writeFileAtomic } from '../../shared/files/durable-files.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * A channel is a directory of static files that any web server, CDN or tailnet host can
 * serve as it is:
 *
 *   <channel-dir>/index.json                                   newest release per profile
 *   <channel-dir>/<version>/memu-<profile>-<version>.raucb      the bundle
 *   <channel-dir>/<version>/memu-<profile>-<version>.release.json      the release manifest
 *   <channel-dir>/<version>/memu-<profile>-<version>.release.json.sig  its signature
 *
 * Publishing never changes a published file in place: the bundle is renamed in, the
 * manifest and signature are written under temporary names and renamed, and the index,
 * which is the only file a device reads first, is replaced last, by one rename. A device
 * reading at any instant sees the old release or the whole new one.
 */
export interface ReleaseFileNames {
  versionDir: string;
  bundle: string;
  manifest: string;
  signature: string;
}

export function releaseFileNames(profile: string, version: string): ReleaseFileNames {
  const base = `memu-${profile}-${version}`;
  return { versionDir: version, bundle: `${base}.raucb`, manifest: `${base}.release.json`, signature: `${base}.release.json.sig` };
}

/** The channel's index, or a fresh one when the channel is new; a damaged index is an error, never silently replaced. */
export async function readChannelIndex(channelDir: string, channel: string): Promise<ChannelIndex | undefined> {
  const path = join(channelDir, CHANNEL_INDEX_NAME);
  const text = await readFile(path, 'utf8').catch(ignoreNotFound);
  if (text === undefined) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new MemuError(`${path} is not JSON`, ExitCode.badInput, 'restore it from a backup of the channel, or publish into an empty directory');
  }
  const parsed = channelIndexSchema.safeParse(data);
  if (!parsed.success) throw new MemuError(describeInvalid(`channel index ${path}`, parsed.error.issues), ExitCode.badInput, 'restore it from a backup of the channel');
  if (parsed.data.channel !== channel) {
    throw new MemuError(`${channelDir} holds channel ${parsed.data.channel}, not ${channel}`, ExitCode.badInput, `pass --channel ${parsed.data.channel}, or another --channel-dir`);
  }
  return parsed.data;
}

/** Refuses to publish over an existing release: a published version's files never change. */
export async function assertNotPublished(channelDir: string, names: ReleaseFileNames): Promise<void> {
  for (const name of [names.bundle, names.manifest]) {
    const path = join(channelDir, names.versionDir, name);
    if (await stat(path).then(() => true, ignoreNotFound)) {
      throw new MemuError(`${path} is already published; a release is never replaced`, ExitCode.badInput, 'build and release a new version (memu build --version X.Y.Z)');
    }
  }
}

/** Moves a finished bundle and writes the signed manifest into the channel, then points the index at it. */
export async function publishRelease(opts: {
  channelDir: string;
  channel: string;
  profile: string;
  version: string;
  names: ReleaseFileNames;
  /** A finished, synced bundle on the channel's filesystem. */
  bundleFile: string;
  manifestText: string;
  signatureText: string;
  now: Date;
}): Promise<{ bundle: string; manifest: string; signature: string; index: string; indexMovedTo: boolean }> {
  const dir = join(opts.channelDir, opts.names.versionDir);
  await mkdir(dir, { recursive: true });
  await removeStaleTemporaryFiles(dir);
  const out = {
    bundle: join(dir, opts.names.bundle),
    manifest: join(dir, opts.names.manifest),
    signature: join(dir, opts.names.signature),
    index: join(opts.channelDir, CHANNEL_INDEX_NAME),
  };
  await rename(opts.bundleFile, out.bundle);
  await fsyncDirectory(dir);
  await writeFileAtomic(out.manifest, opts.manifestText);
  await writeFileAtomic(out.signature, opts.signatureText);

  const index: ChannelIndex = (await readChannelIndex(opts.channelDir, opts.channel)) ?? {
    format: CHANNEL_INDEX_FORMAT,
    channel: opts.channel,
    updatedAt: opts.now.toISOString(),
    latest: {},
  };
  // An older version published later (a fix for an old line) is in the channel but not its newest.
  const current = index.latest[opts.profile];
  const indexMovedTo = !current || compareVersions(opts.version, current.version) >= 0;
  if (indexMovedTo) {
    index.latest[opts.profile] = {
      version: opts.version,
      manifest: `${opts.names.versionDir}/${opts.names.manifest}`,
      signature: `${opts.names.versionDir}/${opts.names.signature}`,
    };
    index.updatedAt = opts.now.toISOString();
    await writeFileAtomic(out.index, `${JSON.stringify(channelIndexSchema.parse(index), null, 2)}\n`);
  }
  return { ...out, indexMovedTo };
}
