import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { lockedImageSchema } from './image-lock.ts';
import { keyIdOf, signatureFileSchema, verifyDetached } from './signature.ts';
import { describeInvalid } from '../errors.ts';

/**
 * The release manifest: what a channel offers one hardware profile, signed with the
 * project's ed25519 release keys as a detached `.sig` (shared/contracts/signature.ts).
 * The host writes it (`memu release`), the device decides with it whether to install
 * (agent/updates/update-decision.ts). Everything the device trusts about an update is in
 * here: the bundle's size and sha256 pin the bytes, RAUC's own X.509 signature inside
 * the bundle is checked again when it is installed.
 *
 * Expiry bounds how long a channel frozen by a mirror or an attacker can hide newer
 * releases; the version order against the running system refuses replays of older ones.
 */
export const RELEASE_MANIFEST_FORMAT = 'memu-release-manifest/1';

/** Semantic versions (semver.org 2.0.0): `1.2.3`, `1.3.0-rc.1`; build metadata (`+…`) is allowed and ignored in ordering. */
const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export const semverSchema = z.string().regex(SEMVER, 'must be a semantic version such as 1.4.0 or 1.5.0-rc.1');

/**
 * Orders two semantic versions by semver.org's precedence rules: negative when `a` is
 * older, 0 when equal (build metadata ignored), positive when newer. Throws on a string
 * that is not a semantic version.
 */
export function compareVersions(a: string, b: string): number {
  const [pa, pb] = [parseVersion(a), parseVersion(b)];
  for (let i = 0; i < 3; i++) if (pa.core[i] !== pb.core[i]) return pa.core[i]! - pb.core[i]!;
  // A pre-release is older than its release; then identifiers compare one by one.
  if (pa.pre.length === 0 || pb.pre.length === 0) return pb.pre.length - pa.pre.length;
  for (let i = 0; i < Math.max(pa.pre.length, pb.pre.length); i++) {
    const [x, y] = [pa.pre[i], pb.pre[i]];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    if (x === y) continue;
    const [nx, ny] = [/^\d+$/.test(x), /^\d+$/.test(y)];
    if (nx && ny) return Number(x) - Number(y);
    if (nx !== ny) return nx ? -1 : 1; // numeric identifiers are older than alphanumeric ones
    return x < y ? -1 : 1;
  }
  return 0;
}

function parseVersion(v: string): { core: number[]; pre: string[] } {
  const m = SEMVER.exec(v);
  if (!m) throw new Error(`${JSON.stringify(v)} is not a semantic version`);
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ? m[4].split('.') : [] };
}

/** A channel's name: `stable`, `beta`, `factory-test`. */
export const channelNameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'must be lower-case letters, digits and dashes (at most 32), such as stable');

/**
 * Where the bundle is: relative to the manifest's own address (a channel is a directory
 * of static files, so it can move between a CDN and a tailnet server as a whole), or an
 * absolute http(s) address. Nothing else: no file://, no credentials in the address.
 */
export const bundleUrlSchema = z.string().min(1).superRefine((value, ctx) => {
  if (/^[a-z][a-z0-9+.-]*:/i.test(value) || value.startsWith('//')) {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      /* reported below */
    }
    if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) ctx.addIssue({ code: 'custom', message: 'must be a path relative to the manifest or an http(s):// address' });
    else if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not carry a user name or password' });
    return;
  }
  if (value.startsWith('/') || value.split('/').includes('..')) ctx.addIssue({ code: 'custom', message: 'a relative bundle path must stay below the manifest (no leading / and no ..)' });
});

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits');
const timestamp = z.string().datetime({ offset: true, message: 'must be an ISO 8601 time such as 2026-12-05T10:00:00Z' });

export const releaseBundleSchema = z
  .object({
    /** A RAUC bundle in the `verity` format (dm-verity protected, streamable over HTTP). */
    format: z.literal('rauc-verity'),
    url: bundleUrlSchema,
    sizeBytes: z.number().int().positive(),
    sha256: sha256Hex,
    /** RAUC's `compatible` inside the bundle; the device's system.conf must name the same. */
    compatible: z.string().min(1),
  })
  .strict();

export const releaseManifestSchema = z
  .object({
    format: z.literal(RELEASE_MANIFEST_FORMAT),
    product: z.literal('memu-os'),
    version: semverSchema,
    channel: channelNameSchema,
    /** The hardware profile the bundle was built for (`qemu-amd64`, `nuc`, `pi5`). */
    profile: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
    /** The oldest running version this release may be installed over (its migrations start there). */
    minimumVersion: semverSchema,
    bundle: releaseBundleSchema,
    /** The stack's images, as in the image lock: reference → digest per platform. */
    stackImages: z.record(z.string().min(1), lockedImageSchema),
    createdAt: timestamp,
    expiresAt: timestamp,
  })
  .strict()
  .superRefine((m, ctx) => {
    if (Date.parse(m.expiresAt) <= Date.parse(m.createdAt)) ctx.addIssue({ code: 'custom', path: ['expiresAt'], message: 'must be later than createdAt' });
    if (SEMVER.test(m.version) && SEMVER.test(m.minimumVersion) && compareVersions(m.minimumVersion, m.version) > 0) {
      ctx.addIssue({ code: 'custom', path: ['minimumVersion'], message: 'must not be newer than the version itself' });
    }
  });
export type ReleaseManifest = z.infer<typeof releaseManifestSchema>;

/** The bundle's absolute address, given the address the manifest was read from. */
export function resolveBundleUrl(manifestUrl: string, bundleUrl: string): string {
  return new URL(bundleUrl, manifestUrl).toString();
}

export type ReleaseManifestCheck =
  | { ok: true; manifest: ReleaseManifest; keyId: string }
  | { ok: false; problem: 'unsigned' | 'untrusted-key' | 'tampered' | 'invalid'; message: string };

/**
 * Checks a release manifest's bytes against its `.sig` text and the keys the device
 * trusts (several during a key rotation), then its format. Only a manifest that passes
 * is read at all: the signature is checked over the exact bytes before parsing.
 */
export function verifyReleaseManifest(manifestBytes: Buffer, signatureText: string, trustedKeys: readonly KeyObject[]): ReleaseManifestCheck {
  let signedBy: string;
  try {
    signedBy = signatureFileSchema.parse(JSON.parse(signatureText)).keyId;
  } catch {
    return { ok: false, problem: 'unsigned', message: 'the signature file is not a memu-signature/1 document' };
  }
  const key = trustedKeys.find((k) => keyIdOf(k) === signedBy);
  if (!key) {
    const trusted = trustedKeys.map(keyIdOf).join(', ') || 'none';
    return { ok: false, problem: 'untrusted-key', message: `signed by key ${signedBy}, which this device does not trust (trusted: ${trusted})` };
  }
  const check = verifyDetached(manifestBytes, signatureText, key);
  if (!check.ok) return { ok: false, problem: 'tampered', message: `the manifest was changed after it was signed (${check.reason})` };
  let data: unknown;
  try {
    data = JSON.parse(manifestBytes.toString('utf8'));
  } catch {
    return { ok: false, problem: 'invalid', message: 'signed, but not JSON' };
  }
  const parsed = releaseManifestSchema.safeParse(data);
  if (!parsed.success) return { ok: false, problem: 'invalid', message: `signed, but ${describeInvalid('the release manifest', parsed.error.issues)}` };
  return { ok: true, manifest: parsed.data, keyId: check.keyId };
}

/**
 * A channel's index (`index.json` at its root): for each profile, the newest release's
 * manifest, relative to the index. It is only a pointer and is not signed: everything a
 * device acts on is in the signed manifest it points to, so a forged index can only point
 * at another signed manifest, which the device judges like any other (version, expiry,
 * profile). One file, so a reader never sees half of an update to it.
 */
export const CHANNEL_INDEX_FORMAT = 'memu-channel-index/1';
export const CHANNEL_INDEX_NAME = 'index.json';

export const channelIndexSchema = z
  .object({
    format: z.literal(CHANNEL_INDEX_FORMAT),
    channel: channelNameSchema,
    updatedAt: timestamp,
    latest: z.record(
      z.string(),
      z.object({ version: semverSchema, manifest: z.string().min(1), signature: z.string().min(1) }).strict(),
    ),
  })
  .strict();
export type ChannelIndex = z.infer<typeof channelIndexSchema>;
