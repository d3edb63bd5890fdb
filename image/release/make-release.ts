import type { KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  channelNameSchema,
  compareVersions,
  RELEASE_MANIFEST_FORMAT,
  releaseManifestSchema,
  semverSchema,
  type ReleaseManifest,
} from '../../shared/contracts/release-manifest.ts';
import { describeInvalid } from '../../shared/errors.ts';
import { fsyncFile } from '../../shared/files/durable-files.ts';
import { platformOf } from '../../hardware/profile.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { hashFile } from '../pipeline/file-hash.ts';
import { assertNotPublished, publishRelease, readChannelIndex, releaseFileNames } from './channel.ts';
import type { ImageManifest } from './image-manifest.ts';
import { checkRaucBundle, createRaucBundle, extractSlotImages, raucCompatible, raucManifestText, type RaucSigner } from './rauc-bundle.ts';
import { signDetached, type SigningKey } from './signing-keys.ts';
import { verifyImageDirectory } from './verify-output.ts';

export interface ReleaseOptions {
  /** A `memu build` output directory. */
  buildDir: string;
  /** The key the build's manifest must be signed with. */
  buildKey: KeyObject;
  channelDir: string;
  channel: string;
  /** ed25519 release key: signs the release manifest. */
  signingKey: SigningKey;
  /** X.509 signer of the RAUC bundle, and the CA devices trust (checked right after signing). */
  rauc: { signer: RaucSigner; keyring: string };
  /** The oldest running version the release installs over; default: any (0.0.0). */
  minimumVersion?: string;
  expiresInDays: number;
  /** Absolute http(s) base the bundle is served from; default: beside the manifest (relative). */
  bundleBaseUrl?: string;
  now: Date;
  log: Logger;
}

export interface ReleaseResult {
  version: string;
  profile: string;
  channel: string;
  bundle: { path: string; sizeBytes: number; sha256: string };
  manifestPath: string;
  signaturePath: string;
  indexPath: string;
  /** False when a newer version already heads the channel for this profile. */
  isLatest: boolean;
  expiresAt: string;
}

/**
 * `memu release`: build output → RAUC bundle → signed release manifest → channel, as one
 * linear list of steps. Nothing is written into the channel until the bundle exists and
 * passed the same checks a device makes.
 */
export async function makeRelease(opts: ReleaseOptions): Promise<ReleaseResult> {
  const build = await verifiedBuild(opts);
  const { version, profile } = build;
  const minimumVersion = opts.minimumVersion ?? '0.0.0';
  checkReleaseInputs({ version, channel: opts.channel, minimumVersion, bundleBaseUrl: opts.bundleBaseUrl });
  const names = releaseFileNames(profile, version);
  await readChannelIndex(opts.channelDir, opts.channel);
  await assertNotPublished(opts.channelDir, names);

  await mkdir(opts.channelDir, { recursive: true });
  await removeAbandonedWork(opts.channelDir);
  // On the channel's filesystem, so the finished bundle is published by a rename.
  const work = await mkdtemp(join(opts.channelDir, `${WORK_PREFIX}${process.pid}-`));
  try {
    const inputDir = join(work, 'input');
    await mkdir(inputDir);
    opts.log.info({ profile, version }, 'reading slot A out of the disk image');
    const imageArtifact = build.artifacts.find((a) => a.role === 'image')!;
    const images = await extractSlotImages(join(opts.buildDir, imageArtifact.name), build.layout, inputDir);

    opts.log.info({ images: images.map((i) => i.fileName) }, 'making the RAUC bundle');
    const bundleFile = join(work, names.bundle);
    await createRaucBundle({
      inputDir,
      bundlePath: bundleFile,
      manifestText: raucManifestText({ profile, version, build: build.agent.sha256.slice(0, 12), images }),
      signer: opts.rauc.signer,
      keyring: opts.rauc.keyring,
    });
    await rm(inputDir, { recursive: true });
    opts.log.info({}, 'checking the bundle as a device would');
    const check = await checkRaucBundle(bundleFile, opts.rauc.keyring);
    if (!check.ok) throw new MemuError(`the new bundle does not verify: ${check.message}`, ExitCode.verifyFailed, 'check that --rauc-keyring is the CA that issued --rauc-cert');
    await fsyncFile(bundleFile);
    const bundleHash = await hashFile(bundleFile);

    const expiresAt = new Date(opts.now.getTime() + opts.expiresInDays * 86_400_000).toISOString();
    const manifest: ReleaseManifest = {
      format: RELEASE_MANIFEST_FORMAT,
      product: 'memu-os',
      version,
      channel: opts.channel,
      profile,
      minimumVersion,
      bundle: {
        format: 'rauc-verity',
        url: opts.bundleBaseUrl ? new URL(`${names.versionDir}/${names.bundle}`, withSlash(opts.bundleBaseUrl)).toString() : names.bundle,
        sizeBytes: bundleHash.sizeBytes,
        sha256: bundleHash.sha256,
        compatible: raucCompatible(profile),
      },
      stackImages: stackImagesOf(build),
      createdAt: opts.now.toISOString(),
      expiresAt,
    };
    const parsed = releaseManifestSchema.safeParse(manifest);
    if (!parsed.success) throw new MemuError(describeInvalid('the release manifest', parsed.error.issues), ExitCode.badInput);
    const manifestText = `${JSON.stringify(parsed.data, null, 2)}\n`;
    const published = await publishRelease({
      channelDir: opts.channelDir,
      channel: opts.channel,
      profile,
      version,
      names,
      bundleFile,
      manifestText,
      signatureText: signDetached(Buffer.from(manifestText), opts.signingKey),
      now: opts.now,
    });
    return {
      version,
      profile,
      channel: opts.channel,
      bundle: { path: published.bundle, ...bundleHash },
      manifestPath: published.manifest,
      signaturePath: published.signature,
      indexPath: published.index,
      isLatest: published.indexMovedTo,
      expiresAt,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const WORK_PREFIX = '.memu-release-';

/**
 * Work directories of releases that were killed (their process is gone): gigabytes a CDN
 * would otherwise serve. A release running beside this one (another profile) keeps its own.
 */
async function removeAbandonedWork(channelDir: string): Promise<void> {
  for (const name of await readdir(channelDir)) {
    const pid = name.startsWith(WORK_PREFIX) ? Number.parseInt(name.slice(WORK_PREFIX.length), 10) : NaN;
    if (pid && !processRuns(pid)) await rm(join(channelDir, name), { recursive: true, force: true });
  }
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The build's manifest, once its signature and every artifact's hash check out. */
async function verifiedBuild(opts: ReleaseOptions): Promise<ImageManifest> {
  opts.log.info({ dir: opts.buildDir }, 'verifying the build output');
  const report = await verifyImageDirectory(opts.buildDir, opts.buildKey);
  if (!report.ok || !report.manifest) {
    throw new MemuError(
      `${opts.buildDir} is not a verified build output:\n${report.problems.map((p) => `  ${p.file}: ${p.problem}`).join('\n')}`,
      ExitCode.verifyFailed,
      'release only what `memu verify` accepts; pass --build-key if the build was signed with another key',
    );
  }
  return report.manifest;
}

function checkReleaseInputs(i: { version: string; channel: string; minimumVersion: string; bundleBaseUrl?: string }): void {
  if (!semverSchema.safeParse(i.version).success) {
    throw new MemuError(`the build's version ${JSON.stringify(i.version)} is not a semantic version; devices order releases by it`, ExitCode.badInput, 'build with --version X.Y.Z');
  }
  if (!channelNameSchema.safeParse(i.channel).success) throw new MemuError(`channel ${JSON.stringify(i.channel)} is not a channel name`, ExitCode.badInput, 'use lower-case letters, digits and dashes, such as stable');
  if (!semverSchema.safeParse(i.minimumVersion).success) throw new MemuError(`--min-version ${JSON.stringify(i.minimumVersion)} is not a semantic version`, ExitCode.badInput, 'e.g. --min-version 1.2.0');
  if (compareVersions(i.minimumVersion, i.version) > 0) {
    throw new MemuError(`--min-version ${i.minimumVersion} is newer than the release ${i.version} itself`, ExitCode.badInput, 'give the oldest version this release may be installed over');
  }
  if (i.bundleBaseUrl !== undefined && !/^https?:\/\/[^/@]+/.test(i.bundleBaseUrl)) {
    throw new MemuError(`--bundle-base-url ${i.bundleBaseUrl} is not an http(s) address`, ExitCode.badInput, 'e.g. https://updates.example.com/stable/ or http://100.64.0.7:8080/stable/');
  }
}

/** The stack's image digests for the build's platform, from the build's manifest. */
function stackImagesOf(build: ImageManifest): ReleaseManifest['stackImages'] {
  const platform = platformOf(build);
  const images: ReleaseManifest['stackImages'] = {};
  for (const image of build.containerImages) images[image.reference] = { platforms: { ...images[image.reference]?.platforms, [platform]: image.digest } };
  return images;
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}
