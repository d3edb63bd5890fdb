import type { KeyObject } from 'node:crypto';
import { compareVersions, verifyReleaseManifest, type ReleaseManifest } from '../../shared/contracts/release-manifest.ts';

/**
 * Whether this device installs a release, decided from nothing but its arguments (no
 * clock, no files, no network), so every rule is unit-tested and a refusal always names
 * its reason. Called with the manifest's exact bytes and `.sig` as fetched; nothing in
 * the manifest is read before its signature is checked.
 */
export type RefusalReason =
  /** The `.sig` is missing or not a signature file. */
  | 'unsigned'
  /** Signed by a key this device does not trust. */
  | 'untrusted-key'
  /** The bytes do not match the signature: changed in transit or on the server. */
  | 'tampered'
  /** Signed, but not a release manifest this agent understands. */
  | 'invalid'
  /** Past its expiry: a frozen or replayed channel. */
  | 'expired'
  /** Built for another hardware profile. */
  | 'wrong-profile'
  /** Published on another channel than the device follows (`force` overrides). */
  | 'wrong-channel'
  /** The device already runs this version. */
  | 'same-version'
  /** Older than the running version (`force` overrides). */
  | 'downgrade'
  /** The running version is older than the release's minimum: install an intermediate release first. */
  | 'below-minimum';

export interface UpdateDecisionInput {
  manifestBytes: Buffer;
  signatureText: string;
  /** The release keys the device trusts (more than one during a key rotation). */
  trustedKeys: readonly KeyObject[];
  device: { profile: string; version: string; channel: string };
  now: Date;
  /** An operator's explicit choice: allows a downgrade or another channel, nothing else. */
  force: boolean;
}

export type UpdateDecision =
  | { action: 'install'; manifest: ReleaseManifest; keyId: string; forced: boolean }
  | { action: 'refuse'; reason: RefusalReason; message: string };

export function decideUpdate(input: UpdateDecisionInput): UpdateDecision {
  const signed = verifyReleaseManifest(input.manifestBytes, input.signatureText, input.trustedKeys);
  if (!signed.ok) return refuse(signed.problem, signed.message);
  const m = signed.manifest;
  const { device } = input;

  if (input.now.getTime() >= Date.parse(m.expiresAt)) {
    return refuse('expired', `release ${m.version} expired at ${m.expiresAt}; the channel has published nothing newer since (ask its publisher for a new release)`);
  }
  if (m.profile !== device.profile) {
    return refuse('wrong-profile', `release ${m.version} is for ${m.profile} devices; this is a ${device.profile}`);
  }
  const order = compareVersions(m.version, device.version);
  if (order === 0) return refuse('same-version', `this device already runs ${m.version}`);
  if (compareVersions(device.version, m.minimumVersion) < 0) {
    return refuse('below-minimum', `release ${m.version} installs only over ${m.minimumVersion} or newer; this device runs ${device.version}: install an intermediate release first`);
  }
  let forced = false;
  if (m.channel !== device.channel) {
    if (!input.force) return refuse('wrong-channel', `release ${m.version} was published on channel ${m.channel}; this device follows ${device.channel} (an operator can force it)`);
    forced = true;
  }
  if (order < 0) {
    if (!input.force) return refuse('downgrade', `release ${m.version} is older than the running ${device.version} (an operator can force a downgrade)`);
    forced = true;
  }
  return { action: 'install', manifest: m, keyId: signed.keyId, forced };
}

function refuse(reason: RefusalReason, message: string): UpdateDecision {
  return { action: 'refuse', reason, message };
}
