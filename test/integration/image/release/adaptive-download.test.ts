import { link, mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeExt4 } from '../../../../image/disk/ext4.ts';
import { estimateAdaptiveDownload } from '../../../../image/release/adaptive-download.ts';
import { generateRaucPki, type RaucPki } from '../../../../image/release/rauc-certificates.ts';
import { createRaucBundle, raucManifestText } from '../../../../image/release/rauc-bundle.ts';
import { runCommandOutcome } from '../../../../shared/process/run-command.ts';
import { prerequisite } from '../../../helpers/prerequisites.ts';
import { deterministicBytes, FIXTURE_EPOCH, writeRootTree } from './build-output-fixture.ts';

// The estimate of what an adaptive (block-hash-index) install downloads, on two real root
// images that differ only in the agent, with a real RAUC bundle and its squashfs tables.
const hasTools = prerequisite(
  'rauc, mksquashfs and rdsquashfs (Debian packages rauc, squashfs-tools, squashfs-tools-ng)',
  (await Promise.all([runCommandOutcome('rauc', ['--version']), runCommandOutcome('mksquashfs', ['-version']), runCommandOutcome('rdsquashfs', ['--version'])])).every((r) => r.code === 0),
);

const ROOT_BYTES = 64 << 20;
const AGENT_BYTES = 2_400_000;
let dir: string;
let pki: RaucPki;
let oldImage: string;
let newImage: string;
let bundle: string;

async function rootImage(name: string, agent: Buffer): Promise<string> {
  const tree = join(dir, `tree-${name}`);
  await writeRootTree(tree, { agent });
  const file = join(dir, `${name}.ext4`);
  const fd = await open(file, 'w');
  await fd.truncate(ROOT_BYTES);
  await fd.close();
  await makeExt4({ target: { file, offsetBytes: 0, sizeBytes: ROOT_BYTES }, uuid: '6f1c1f53-6d33-4a4e-9a58-6a0a3d4f2b11', label: 'memu-root-a', sourceDir: tree, epoch: FIXTURE_EPOCH });
  return file;
}

beforeAll(async () => {
  if (!hasTools) return;
  dir = await mkdtemp(join(tmpdir(), 'memu-adaptive-'));
  pki = await generateRaucPki(join(dir, 'pki'));
  const agent = deterministicBytes('agent-1', AGENT_BYTES);
  oldImage = await rootImage('old', agent);
  // Same size, new bytes throughout: a rebuilt agent bundle.
  newImage = await rootImage('new', deterministicBytes('agent-2', AGENT_BYTES));
  const input = join(dir, 'input');
  await mkdir(input);
  await link(newImage, join(input, 'rootfs.ext4'));
  bundle = join(dir, 'new.raucb');
  await createRaucBundle({
    inputDir: input,
    bundlePath: bundle,
    manifestText: raucManifestText({ profile: 'qemu-amd64', version: '1.0.1', build: 'test', images: [{ slotClass: 'rootfs', fileName: 'rootfs.ext4', adaptive: true }] }),
    signer: pki.signer,
    keyring: pki.keyring,
  });
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hasTools)('adaptive download estimate', () => {
  it('a device on the old image fetches the new agent and little else', async () => {
    const e = await estimateAdaptiveDownload({ bundle, localSlotImages: [oldImage] });
    const agentBlocks = Math.ceil(AGENT_BYTES / 4096);
    // The agent's blocks, and a few of the filesystem's own (its inode, a bitmap).
    expect(e.image.blocksMissingLocally).toBeGreaterThanOrEqual(agentBlocks);
    expect(e.image.blocksMissingLocally).toBeLessThan(agentBlocks + 16);
    // Random bytes do not compress: the fetched squashfs blocks hold at least the agent, at most two partial blocks more.
    expect(e.image.fetchedBytes).toBeGreaterThanOrEqual(AGENT_BYTES * 0.99);
    expect(e.image.fetchedBytes).toBeLessThan(AGENT_BYTES + 3 * 65536 + 16 * 65536);
    expect(e.downloadBytes).toBe(e.image.fetchedBytes + e.hashIndexBytes + e.wholeFilesBytes + e.otherBytes);
    expect(e.wholeFilesBytes).toBeLessThan(4096); // RAUC's manifest only
    expect(e.ratio).toBeLessThan(0.15);
  });

  it('a device that already has the new image in a slot fetches no image data at all', async () => {
    const e = await estimateAdaptiveDownload({ bundle, localSlotImages: [oldImage, newImage] });
    expect(e.image.blocksMissingLocally).toBe(0);
    expect(e.image.fetchedBytes).toBe(0);
    expect(e.downloadBytes).toBe(e.hashIndexBytes + e.wholeFilesBytes + e.otherBytes);
  });
});
