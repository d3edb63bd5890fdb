import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertNotPublished, publishRelease, readChannelIndex, releaseFileNames } from '../../../../image/release/channel.ts';
import { channelIndexSchema } from '../../../../shared/contracts/release-manifest.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

async function publish(channelDir: string, version: string, profile = 'qemu-amd64') {
  const names = releaseFileNames(profile, version);
  const bundleFile = join(channelDir, `.staged-${version}`);
  await writeFile(bundleFile, `bundle ${version}`);
  return publishRelease({
    channelDir,
    channel: 'stable',
    profile,
    version,
    names,
    bundleFile,
    manifestText: `{"version":"${version}"}\n`,
    signatureText: `sig of ${version}\n`,
    now: new Date('2026-12-05T12:00:00Z'),
  });
}

async function index(channelDir: string) {
  return channelIndexSchema.parse(JSON.parse(await readFile(join(channelDir, 'index.json'), 'utf8')));
}

describe('channel publishing', () => {
  it('lays a release out as static files under its version, and points the index at it', async () => {
    const dir = await tempDir('memu-channel-');
    const r = await publish(dir, '1.2.0');
    expect(r.indexMovedTo).toBe(true);
    expect((await readdir(join(dir, '1.2.0'))).sort()).toEqual(['memu-qemu-amd64-1.2.0.raucb', 'memu-qemu-amd64-1.2.0.release.json', 'memu-qemu-amd64-1.2.0.release.json.sig']);
    expect(await readFile(join(dir, '1.2.0', 'memu-qemu-amd64-1.2.0.raucb'), 'utf8')).toBe('bundle 1.2.0');
    expect((await index(dir)).latest).toEqual({
      'qemu-amd64': { version: '1.2.0', manifest: '1.2.0/memu-qemu-amd64-1.2.0.release.json', signature: '1.2.0/memu-qemu-amd64-1.2.0.release.json.sig' },
    });
    // Nothing but the release and the index: no temporary files left for a CDN to serve.
    expect((await readdir(dir)).sort()).toEqual(['1.2.0', 'index.json']);
  });

  it('keeps the newest version at the head when an older one is published later, per profile', async () => {
    const dir = await tempDir('memu-channel-');
    await publish(dir, '1.3.0');
    const older = await publish(dir, '1.2.1');
    expect(older.indexMovedTo).toBe(false);
    await publish(dir, '1.0.0', 'nuc');
    const latest = (await index(dir)).latest;
    expect(latest['qemu-amd64']?.version).toBe('1.3.0');
    expect(latest.nuc?.version).toBe('1.0.0');
    // The older release is still served, for devices an operator points at it.
    expect(await readFile(join(dir, '1.2.1', 'memu-qemu-amd64-1.2.1.release.json.sig'), 'utf8')).toBe('sig of 1.2.1\n');
  });

  it('never replaces a published release', async () => {
    const dir = await tempDir('memu-channel-');
    await publish(dir, '1.2.0');
    await expect(assertNotPublished(dir, releaseFileNames('qemu-amd64', '1.2.0'))).rejects.toThrow(/already published; a release is never replaced/);
    await expect(assertNotPublished(dir, releaseFileNames('nuc', '1.2.0'))).resolves.toBeUndefined();
  });

  it('refuses a damaged index or another channel\'s directory instead of overwriting it', async () => {
    const dir = await tempDir('memu-channel-');
    await writeFile(join(dir, 'index.json'), '{"format":"memu-channel-index/1"');
    await expect(readChannelIndex(dir, 'stable')).rejects.toThrow(/index.json is not JSON/);
    await publish(await tempDir('x'), '1.0.0');
    const beta = await tempDir('memu-channel-');
    await writeFile(join(beta, 'index.json'), JSON.stringify({ format: 'memu-channel-index/1', channel: 'beta', updatedAt: '2026-12-01T00:00:00Z', latest: {} }));
    await expect(readChannelIndex(beta, 'stable')).rejects.toThrow(/holds channel beta, not stable/);
  });
});
