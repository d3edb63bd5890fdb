import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadProfile } from '../../../../hardware/index.ts';
import { makeExt4 } from '../../../../image/disk/ext4.ts';
import { computeLayout, partitionByRole } from '../../../../image/disk/layout.ts';
import { IMAGE_MANIFEST_FORMAT, imageManifestSchema, MANIFEST_NAME, SIGNATURE_NAME } from '../../../../image/release/image-manifest.ts';
import { signDetached, type SigningKey } from '../../../../image/release/signing-keys.ts';
import { hashFile } from '../../../../image/pipeline/file-hash.ts';

/**
 * A small but real `memu build` output for qemu-amd64: the profile's layout with root A
 * shrunk to 64 MiB, root A a real ext4 made by the build's own `makeExt4` from a tree with
 * a kernel, an initrd, an agent bundle and some incompressible "packages", and a manifest
 * signed like the build signs it. A full build takes minutes; releasing reads only the
 * image's root A and the signed manifest, which this has exactly.
 */
export const FIXTURE_EPOCH = 1767225600;

export interface RootTree {
  /** Bytes of the agent bundle (`/usr/lib/memu/agent/memu-agent.mjs`), the file an agent-only release changes. */
  agent: Buffer;
  /** Extra files, path → content. */
  extra?: Record<string, Buffer>;
}

export async function writeRootTree(dir: string, tree: RootTree): Promise<void> {
  const files: Record<string, Buffer> = {
    'boot/vmlinuz-6.12.0-memu': deterministicBytes('kernel', 3 << 20),
    'boot/initrd.img-6.12.0-memu': deterministicBytes('initrd', 4 << 20),
    'usr/lib/memu/agent/memu-agent.mjs': tree.agent,
    'etc/memu/release': Buffer.from('memu-os\n'),
    ...tree.extra,
  };
  // Stands for the packages: incompressible, so the bundle's size is what a real root's data costs.
  for (let i = 0; i < 12; i++) files[`usr/lib/memu-fixture/package-${i}.bin`] = deterministicBytes(`package-${i}`, 2 << 20);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

/** The same bytes for the same seed, in every run: two builds differ only where a test changes them. */
export function deterministicBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** Makes a signed build output directory holding a disk image whose root A is made from `tree`. */
export async function makeBuildOutput(dir: string, opts: { version: string; tree: RootTree; key: SigningKey; workDir: string }): Promise<string> {
  const profile = loadProfile('qemu-amd64');
  const layout = computeLayout(profile, 'release-fixture', { esp: 8, 'root-a': 64, 'root-b': 64, data: 8 });
  await mkdir(dir, { recursive: true });
  const imageName = `memu-qemu-amd64-${opts.version}.img`;
  const image = join(dir, imageName);
  const fd = await open(image, 'w');
  await fd.truncate(layout.imageSizeBytes);
  await fd.close();
  const treeDir = join(opts.workDir, `tree-${opts.version}-${randomBytes(4).toString('hex')}`);
  await writeRootTree(treeDir, opts.tree);
  const rootA = partitionByRole(layout, 'root-a');
  await makeExt4({ target: { file: image, offsetBytes: rootA.startBytes, sizeBytes: rootA.sizeBytes }, uuid: rootA.fsUuid, label: rootA.label, sourceDir: treeDir, epoch: FIXTURE_EPOCH });
  const imageHash = await hashFile(image);
  const manifest = imageManifestSchema.parse({
    format: IMAGE_MANIFEST_FORMAT,
    product: 'memu-os',
    version: opts.version,
    profile: 'qemu-amd64',
    arch: 'amd64',
    sourceDateEpoch: FIXTURE_EPOCH,
    rootfs: { key: 'fixture', suite: 'trixie', mirror: 'http://deb.debian.org/debian' },
    kernel: '6.12.0-memu',
    agent: { version: opts.version, sha256: createHash('sha256').update(opts.tree.agent).digest('hex') },
    layout,
    packages: [],
    containerImages: [{ service: 'front', reference: 'registry.local/memu/front:1', digest: `sha256:${'c'.repeat(64)}` }],
    sizes: { imageBytes: imageHash.sizeBytes, mappedBytes: 0, zstBytes: 0 },
    artifacts: [{ name: imageName, role: 'image', ...imageHash }],
  });
  const text = `${JSON.stringify(manifest, null, 2)}\n`;
  await writeFile(join(dir, MANIFEST_NAME), text);
  await writeFile(join(dir, SIGNATURE_NAME), signDetached(Buffer.from(text), opts.key));
  return dir;
}
