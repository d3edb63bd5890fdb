import { copyFile, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideUpdate } from '../../../../agent/updates/update-decision.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { computeLayout } from '../../../../image/disk/layout.ts';
import { hashFile } from '../../../../image/pipeline/file-hash.ts';
import { generateRaucPki, type RaucPki } from '../../../../image/release/rauc-certificates.ts';
import { checkRaucBundle } from '../../../../image/release/rauc-bundle.ts';
import { raucSystemConf } from '../../../../image/release/rauc-system-conf.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../../../../image/release/signing-keys.ts';
import { channelIndexSchema } from '../../../../shared/contracts/release-manifest.ts';
import { runCommandOutcome } from '../../../../shared/process/run-command.ts';
import { commandResult, runMemu } from '../../../helpers/memu-build.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';
import { deterministicBytes, makeBuildOutput } from './build-output-fixture.ts';

// Real RAUC (Debian's rauc, with squashfs-tools) makes and checks every bundle here.
const hasRauc = prerequisite('rauc and mksquashfs (Debian packages rauc, squashfs-tools)', (await runCommandOutcome('rauc', ['--version'])).code === 0 && (await runCommandOutcome('mksquashfs', ['-version'])).code === 0);

let dir: string;
let pki: RaucPki;
let key: SigningKey;
let keyPath: string;
let buildDir: string;
let channelDir: string;
let released: { version: string; bundle: { path: string; sizeBytes: number; sha256: string }; manifestPath: string; signaturePath: string; isLatest: boolean };

beforeAll(async () => {
  if (!hasRauc) return;
  dir = await mkdtemp(join(tmpdir(), 'memu-release-'));
  pki = await generateRaucPki(join(dir, 'pki'));
  keyPath = (await generateSigningKey(join(dir, 'keys', 'release'))).keyPath;
  key = await loadSigningKey(keyPath);
  buildDir = await makeBuildOutput(join(dir, 'build-1.1.0'), { version: '1.1.0', tree: { agent: deterministicBytes('agent-1.1.0', 2_400_000) }, key, workDir: dir });
  channelDir = join(dir, 'channel');
  // What a killed release leaves: its process is gone, so this release removes it.
  await mkdir(join(channelDir, '.memu-release-4000001-x1y2z3', 'input'), { recursive: true });
  await writeFile(join(channelDir, '.memu-release-4000001-x1y2z3', 'input', 'rootfs.ext4'), 'half a slot image');
  const r = await runMemu([
    '--json', 'release', buildDir,
    '--channel-dir', channelDir, '--channel', 'stable', '--key', keyPath,
    '--rauc-cert', pki.signer.certPath, '--rauc-key', pki.signer.keyPath, '--rauc-keyring', pki.keyring,
    '--min-version', '1.0.0', '--expires-in-days', '30',
  ]);
  if (r.code !== 0) throw new Error(`memu release failed (exit ${r.code}):\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  released = commandResult<typeof released>(r);
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hasRauc)('memu release with real RAUC', () => {
  it('publishes a verity bundle that `rauc info` verifies against the release CA, carrying root A adaptively', async () => {
    // Nothing else in the channel: no work directory of this release, nor of a killed one.
    expect((await readdir(channelDir)).sort()).toEqual(['1.1.0', 'index.json']);
    const info = await runCommandOutcome('rauc', ['info', `--keyring=${pki.keyring}`, '--output-format=json', released.bundle.path]);
    expect(info.code, info.stderr).toBe(0);
    const parsed = JSON.parse(info.stdout) as { compatible: string; version: string; images: Record<string, { filename: string; size: number; adaptive?: string[] }>[] };
    expect(parsed).toMatchObject({ compatible: 'memu-os-qemu-amd64', version: '1.1.0' });
    const text = await runCommandOutcome('rauc', ['info', `--keyring=${pki.keyring}`, released.bundle.path]);
    expect(text.stdout).toMatch(/Bundle Format:\s+verity/);
    expect(parsed.images).toHaveLength(1);
    expect(parsed.images[0]!.rootfs).toMatchObject({ filename: 'rootfs.ext4', size: 64 << 20, adaptive: ['block-hash-index'] });
    // The root image in the bundle is root A of the disk image, byte for byte.
    const out = join(dir, 'extracted');
    const extracted = await runCommandOutcome('rauc', ['extract', `--keyring=${pki.keyring}`, released.bundle.path, out]);
    expect(extracted.code, extracted.stderr).toBe(0);
    const layout = computeLayout(loadProfile('qemu-amd64'), 'release-fixture', { esp: 8, 'root-a': 64, 'root-b': 64, data: 8 });
    const rootA = layout.partitions.find((p) => p.role === 'root-a')!;
    const image = await open(join(buildDir, 'memu-qemu-amd64-1.1.0.img'), 'r');
    const fromImage = Buffer.alloc(rootA.sizeBytes);
    await image.read(fromImage, 0, rootA.sizeBytes, rootA.startBytes);
    await image.close();
    expect((await readFile(join(out, 'rootfs.ext4'))).equals(fromImage)).toBe(true);
    await rm(out, { recursive: true });
  });

  it('writes a signed release manifest a qemu-amd64 device on 1.0.x accepts, pinning the bundle by size and sha256', async () => {
    const manifestBytes = await readFile(released.manifestPath);
    const decision = decideUpdate({
      manifestBytes,
      signatureText: await readFile(released.signaturePath, 'utf8'),
      trustedKeys: [key.publicKey],
      device: { profile: 'qemu-amd64', version: '1.0.3', channel: 'stable' },
      now: new Date(),
      force: false,
    });
    expect(decision.action, JSON.stringify(decision)).toBe('install');
    if (decision.action !== 'install') return;
    expect(decision.manifest.bundle).toEqual({ format: 'rauc-verity', url: 'memu-qemu-amd64-1.1.0.raucb', compatible: 'memu-os-qemu-amd64', ...(await hashFile(released.bundle.path)) });
    expect(decision.manifest.stackImages).toEqual({ 'registry.local/memu/front:1': { platforms: { 'linux/amd64': `sha256:${'c'.repeat(64)}` } } });
    const index = channelIndexSchema.parse(JSON.parse(await readFile(join(channelDir, 'index.json'), 'utf8')));
    expect(index.latest['qemu-amd64']).toEqual({ version: '1.1.0', manifest: '1.1.0/memu-qemu-amd64-1.1.0.release.json', signature: '1.1.0/memu-qemu-amd64-1.1.0.release.json.sig' });
  });

  it('the same manifest is refused by a Pi 5, once expired, below its minimum, and by a device on 1.1.0', async () => {
    const input = { manifestBytes: await readFile(released.manifestPath), signatureText: await readFile(released.signaturePath, 'utf8'), trustedKeys: [key.publicKey], force: false };
    const device = { profile: 'qemu-amd64', version: '1.0.3', channel: 'stable' };
    expect(decideUpdate({ ...input, device: { ...device, profile: 'pi5' }, now: new Date() })).toMatchObject({ action: 'refuse', reason: 'wrong-profile' });
    expect(decideUpdate({ ...input, device, now: new Date(Date.now() + 31 * 86_400_000) })).toMatchObject({ action: 'refuse', reason: 'expired' });
    expect(decideUpdate({ ...input, device: { ...device, version: '0.9.0' }, now: new Date() })).toMatchObject({ action: 'refuse', reason: 'below-minimum' });
    expect(decideUpdate({ ...input, device: { ...device, version: '1.1.0' }, now: new Date() })).toMatchObject({ action: 'refuse', reason: 'same-version' });
  });

  it('a bundle with one byte changed is refused before anything is unpacked, in its payload or in its signature', async () => {
    const { sizeBytes } = released.bundle;
    for (const [where, offset, problem] of [
      ['payload', Math.floor(sizeBytes / 3), 'payload'],
      ['signature', sizeBytes - 200, 'signature'],
    ] as const) {
      const copy = join(dir, `tampered-${where}.raucb`);
      await copyFile(released.bundle.path, copy);
      const fd = await open(copy, 'r+');
      const byte = Buffer.alloc(1);
      await fd.read(byte, 0, 1, offset);
      byte[0] = byte[0]! ^ 0x01;
      await fd.write(byte, 0, 1, offset);
      await fd.close();
      // A device downloading the whole file sees a sha256 other than the signed manifest's.
      expect((await hashFile(copy)).sha256).not.toBe(released.bundle.sha256);
      const check = await checkRaucBundle(copy, pki.keyring);
      expect(check, where).toMatchObject({ ok: false, problem });
      if (!check.ok) expect(check.message).toMatch(where === 'payload' ? /contents were changed after it was signed/ : /signature does not verify against the trusted CA/);
      // Nothing unpacked is left beside it.
      expect((await readdir(dir)).filter((n) => n.startsWith('.memu-bundle-check-'))).toEqual([]);
      await rm(copy);
    }
  });

  it('RAUC accepts the system.conf the image will carry, and refuses the bundle under another CA', async () => {
    const conf = join(dir, 'system.conf');
    await writeFile(conf, raucSystemConf(computeLayout(loadProfile('qemu-amd64'), 'release-fixture')));
    const info = await runCommandOutcome('rauc', [`--conf=${conf}`, `--keyring=${pki.keyring}`, 'info', released.bundle.path]);
    expect(info.code, info.stderr).toBe(0);
    expect(info.stdout).toContain("Compatible:");
    const stranger = await generateRaucPki(join(dir, 'stranger-pki'), { organization: 'Stranger' });
    expect(await checkRaucBundle(released.bundle.path, stranger.keyring)).toMatchObject({ ok: false, problem: 'signature' });
  });

  it('refuses to publish the same version again, and a build whose image was changed after signing', async () => {
    const args = ['release', '--channel-dir', channelDir, '--key', keyPath, '--rauc-cert', pki.signer.certPath, '--rauc-key', pki.signer.keyPath, '--rauc-keyring', pki.keyring];
    const again = await runMemu([...args.slice(0, 1), buildDir, ...args.slice(1)]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already published; a release is never replaced/);
    const image = join(buildDir, 'memu-qemu-amd64-1.1.0.img');
    const fd = await open(image, 'r+');
    await fd.write(Buffer.from([0x42]), 0, 1, 5 << 20);
    await fd.close();
    const tampered = await runMemu([...args.slice(0, 1), buildDir, '--channel-dir', join(dir, 'channel-2'), ...args.slice(3)]);
    expect(tampered.code).toBe(4);
    expect(tampered.stderr).toMatch(/is not a verified build output[\s\S]*sha256/);
    expect(await readdir(dir)).not.toContain('channel-2');
  });
});
