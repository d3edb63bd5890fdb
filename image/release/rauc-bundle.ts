import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DiskLayout } from '../../shared/contracts/disk-layout.ts';
import { runCommand, runCommandOutcome, type CommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';

/**
 * The OS update bundle: a RAUC bundle in the `verity` format, signed with an X.509 key.
 * RAUC is what Home Assistant OS ships; the verity format lets a device stream the
 * bundle over HTTP (range requests, every block checked by dm-verity as it is read), and
 * the root image's block hash index (`adaptive=block-hash-index`) lets it fetch only the
 * 4 KiB blocks it does not already have in either slot.
 *
 * Slot images come straight out of the built disk image's partitions (no mount): the
 * root filesystem of slot A becomes `rootfs.ext4`; on the Raspberry Pi the slot's boot
 * partition becomes `boot.vfat`. On x86-64 the slot's boot files are the kernel and
 * initrd in the root filesystem's /boot (the ESP holds copies): the device's boot backend
 * copies them to the ESP when it arms the slot (see rauc-system-conf.ts).
 */
export const RAUC_BUNDLE_EXTENSION = '.raucb';

/** RAUC's `compatible`: a bundle installs only on a system.conf naming the same string. */
export function raucCompatible(profile: string): string {
  return `memu-os-${profile}`;
}

/**
 * squashfs settings of the bundle. An adaptive install fetches whole squashfs blocks, so
 * the block size is what one changed 4 KiB block of the root image costs: with 4 KiB
 * blocks a release that adds two files downloads 9.6 MiB, with 64 KiB (RAUC's suggestion)
 * 47.7 MiB, because `mke2fs -d` renumbers inodes and so rewrites directory blocks all
 * over the image; the bundle is 12 % larger (373 against 334 MiB; measured in the
 * README). zstd: the fastest to decompress on the device.
 */
export const BUNDLE_SQUASHFS_ARGS = '-comp zstd -Xcompression-level 15 -b 4k';

export interface SlotImage {
  /** RAUC's slot class: `rootfs` or `boot`. */
  slotClass: 'rootfs' | 'boot';
  fileName: string;
  /** Written by adaptive updates: only blocks a device lacks are downloaded. */
  adaptive: boolean;
}

/** The images a bundle for this layout carries, in the order the device installs them. */
export function slotImagesFor(layout: DiskLayout): SlotImage[] {
  const images: SlotImage[] = [{ slotClass: 'rootfs', fileName: 'rootfs.ext4', adaptive: true }];
  if (layout.partitions.some((p) => p.role === 'boot-a')) images.push({ slotClass: 'boot', fileName: 'boot.vfat', adaptive: false });
  return images;
}

/**
 * Copies slot A's partitions out of a built disk image into `dir` as slot images, keeping
 * holes as holes (`dd conv=sparse`): root A is 1.5–4 GiB, most of it never written.
 */
export async function extractSlotImages(imagePath: string, layout: DiskLayout, dir: string): Promise<SlotImage[]> {
  const images = slotImagesFor(layout);
  for (const image of images) {
    const role = image.slotClass === 'rootfs' ? 'root-a' : 'boot-a';
    const part = layout.partitions.find((p) => p.role === role);
    if (!part) throw new MemuError(`the image's layout has no ${role} partition`, ExitCode.badInput, 'release a build of a Memu profile (its manifest lists the layout)');
    await runCommand('dd', [
      `if=${imagePath}`,
      `of=${join(dir, image.fileName)}`,
      'bs=1M',
      `skip=${part.startBytes}`,
      `count=${part.sizeBytes}`,
      'iflag=skip_bytes,count_bytes',
      'conv=sparse',
      'status=none',
    ]);
  }
  return images;
}

/** The bundle's manifest (`manifest.raucm`), as RAUC reads it when it makes the bundle. */
export function raucManifestText(opts: { profile: string; version: string; build: string; images: SlotImage[] }): string {
  const lines = [
    '[update]',
    `compatible=${raucCompatible(opts.profile)}`,
    `version=${opts.version}`,
    `build=${opts.build}`,
    `description=Memu OS ${opts.version} for ${opts.profile}`,
    '',
    '[bundle]',
    'format=verity',
  ];
  for (const image of opts.images) {
    lines.push('', `[image.${image.slotClass}]`, `filename=${image.fileName}`);
    if (image.adaptive) lines.push('adaptive=block-hash-index');
  }
  return `${lines.join('\n')}\n`;
}

export interface RaucSigner {
  /** The signing certificate (PEM). */
  certPath: string;
  /** Its private key (PEM). */
  keyPath: string;
}

/**
 * Makes a signed verity bundle of `inputDir` (which holds the slot images) at
 * `bundlePath`, which must not exist yet. `keyring` (the CA certificate devices trust)
 * makes RAUC check its own signature right after signing.
 */
export async function createRaucBundle(opts: {
  inputDir: string;
  bundlePath: string;
  manifestText: string;
  signer: RaucSigner;
  keyring: string;
}): Promise<void> {
  await writeFile(join(opts.inputDir, 'manifest.raucm'), opts.manifestText);
  const r = await runRauc([
    'bundle',
    `--cert=${opts.signer.certPath}`,
    `--key=${opts.signer.keyPath}`,
    `--keyring=${opts.keyring}`,
    `--mksquashfs-args=${BUNDLE_SQUASHFS_ARGS}`,
    opts.inputDir,
    opts.bundlePath,
  ]);
  if (r.code !== 0) {
    const reason = raucError(r);
    if (/signature|certificate|verif|key/i.test(reason)) {
      throw new MemuError(`RAUC could not sign the bundle: ${reason}`, ExitCode.badInput, 'check --rauc-cert and --rauc-key belong together and the cert was issued by the --rauc-keyring CA');
    }
    throw new MemuError(`rauc bundle failed: ${reason}`, ExitCode.failure);
  }
}

export interface BundleInfo {
  compatible: string;
  version: string;
  images: { slotClass: string; fileName: string; sizeBytes: number; sha256: string; adaptive: string[] }[];
}

export type BundleCheck = { ok: true; info: BundleInfo } | { ok: false; problem: 'signature' | 'payload' | 'unreadable'; message: string };

/**
 * What a device checks before it writes anything: RAUC's signature over the bundle's
 * manifest (against the CA in `keyring`), then the whole payload against the verity
 * root hash that signature covers. `rauc info` checks only the former for verity bundles
 * (a device checks the payload block by block while it streams); `rauc extract` checks
 * the payload whole before unpacking, so it runs into a scratch directory beside the bundle.
 */
export async function checkRaucBundle(bundlePath: string, keyring: string): Promise<BundleCheck> {
  const info = await runRauc(['info', `--keyring=${keyring}`, '--output-format=json', bundlePath]);
  if (info.code !== 0) return { ok: false, ...classify(raucError(info), 'signature') };
  let parsed: BundleInfo;
  try {
    parsed = parseRaucInfo(info.stdout);
  } catch (err) {
    return { ok: false, problem: 'unreadable', message: `rauc info printed something unexpected: ${(err as Error).message}` };
  }
  const scratch = await mkdtemp(join(dirname(bundlePath), '.memu-bundle-check-'));
  try {
    const extracted = await runRauc(['extract', `--keyring=${keyring}`, bundlePath, join(scratch, 'out')]);
    if (extracted.code !== 0) return { ok: false, ...classify(raucError(extracted), 'payload') };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { ok: true, info: parsed };
}

/** RAUC's wording turned into what went wrong and what to do. */
function classify(reason: string, stage: 'signature' | 'payload'): { problem: 'signature' | 'payload' | 'unreadable'; message: string } {
  if (/payload is corrupted|hash.*mismatch|verity/i.test(reason)) {
    return { problem: 'payload', message: `the bundle's contents were changed after it was signed (${reason}); fetch it again from the channel` };
  }
  if (/signature|certificate|CMS|verif|signer/i.test(reason)) {
    return { problem: 'signature', message: `the bundle's signature does not verify against the trusted CA (${reason}); it was changed or signed by another key` };
  }
  if (stage === 'payload') return { problem: 'payload', message: `the bundle's contents could not be verified (${reason})` };
  return { problem: 'unreadable', message: `not a readable RAUC bundle (${reason})` };
}

function parseRaucInfo(stdout: string): BundleInfo {
  const data = JSON.parse(stdout) as {
    compatible?: string;
    version?: string;
    images?: Record<string, { filename?: string; size?: number; checksum?: string; adaptive?: string[] }>[];
  };
  if (typeof data.compatible !== 'string' || typeof data.version !== 'string') throw new Error('no compatible or version');
  return {
    compatible: data.compatible,
    version: data.version,
    images: (data.images ?? []).flatMap((entry) =>
      Object.entries(entry).map(([slotClass, i]) => ({ slotClass, fileName: i.filename ?? '', sizeBytes: i.size ?? 0, sha256: i.checksum ?? '', adaptive: i.adaptive ?? [] })),
    ),
  };
}

async function runRauc(args: string[]): Promise<CommandOutcome> {
  const r = await runCommandOutcome('rauc', args);
  if (r.notInstalled) throw new MemuError('missing host tool: rauc (Debian packages rauc and squashfs-tools)', ExitCode.environment, 'run scripts/setup-host');
  return r;
}

/** The line RAUC explains a failure with (it logs progress lines before it). */
function raucError(r: CommandOutcome): string {
  const lines = `${r.stderr}\n${r.stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
  const failure = lines.filter((l) => /fail|error|invalid|corrupt|not /i.test(l));
  return (failure.at(-1) ?? lines.at(-1) ?? `exit ${r.code}`).replace(/^rauc-?\w*:\s*/i, '');
}
