import { describe, expect, it } from 'vitest';
import { explainKeyChange, keyDigest, mmdebstrapArgs, type RootfsKey } from '../../../../image/pipeline/rootfs.ts';

const key: RootfsKey = {
  kind: 'memu-rootfs/1',
  suite: 'trixie',
  mirror: 'http://deb.debian.org/debian',
  components: ['main'],
  arch: 'amd64',
  variant: 'minbase',
  packages: ['docker.io', 'systemd'],
  extraAptSources: [],
  customizeHookSha256: 'a'.repeat(64),
  mmdebstrapVersion: 'mmdebstrap 1.3.5',
  sourceDateEpoch: 1767225600,
};

describe('root filesystem cache key', () => {
  it('is plain data whose digest changes with any input and only then', () => {
    expect(keyDigest({ ...key })).toBe(keyDigest(key));
    expect(keyDigest({ ...key, packages: ['docker.io', 'systemd', 'vim'] })).not.toBe(keyDigest(key));
    expect(keyDigest({ ...key, arch: 'arm64' })).not.toBe(keyDigest(key));
    expect(keyDigest({ ...key, sourceDateEpoch: 1 })).not.toBe(keyDigest(key));
  });

  it('explains a miss by naming the inputs that changed', () => {
    expect(explainKeyChange(undefined, key)).toEqual(['no earlier build of this profile in the cache']);
    expect(explainKeyChange(key, { ...key, packages: ['docker.io', 'nano'] })).toEqual(['packages (+nano -systemd)']);
    expect(explainKeyChange(key, { ...key, mirror: 'http://mirror.lan/debian' })).toEqual([
      'mirror ("http://deb.debian.org/debian" -> "http://mirror.lan/debian")',
    ]);
  });

  it('passes extra apt sources with their keyrings to mmdebstrap', () => {
    const args = mmdebstrapArgs(
      { ...key, extraAptSources: [{ name: 'rpi', uri: 'http://archive.raspberrypi.com/debian', suites: ['trixie'], components: ['main'], keyring: '/k/rpi.gpg' }] },
      '/t',
      '/debs',
    );
    expect(args).toContain('--keyring=/k/rpi.gpg');
    expect(args.at(-1)).toBe('deb [signed-by=/k/rpi.gpg] http://archive.raspberrypi.com/debian trixie main');
    expect(args).toContain('--include=docker.io,systemd');
    expect(args.slice(-4, -1)).toEqual(['trixie', '/t', 'http://deb.debian.org/debian']);
  });

  it('keys a pinned root filesystem apart from the unpinned one, and explains the difference', () => {
    const pinned = { ...key, pinnedPackagesSha256: 'b'.repeat(64) };
    expect(keyDigest(pinned)).not.toBe(keyDigest(key));
    expect(explainKeyChange(key, pinned)).toEqual([`pinnedPackagesSha256 (undefined -> "${'b'.repeat(64)}")`]);
    expect(explainKeyChange(pinned, key)).toEqual([`pinnedPackagesSha256 ("${'b'.repeat(64)}" -> undefined)`]);
  });

  it('a pinned build installs from the local repository only, and the tree keeps the sources its mirrors give', () => {
    const args = mmdebstrapArgs(key, '/t', '/debs', { pinnedRepo: '/w/pinned-packages', indexesOut: '/w/indexes' });
    expect(args).toContain(`--setup-hook=cp "$1/etc/apt/sources.list" '/w/pinned-packages/sources.list.of-the-tree' && echo 'deb [trusted=yes] copy:///w/pinned-packages ./' > "$1/etc/apt/sources.list"`);
    expect(args).toContain(`--customize-hook=cat '/w/pinned-packages/sources.list.of-the-tree' > "$1/etc/apt/sources.list"`);
    expect(args).toContain(`--customize-hook=find "$1/var/lib/apt/lists" -maxdepth 1 -name '*_Packages' -exec cp {} '/w/indexes/' ';'`);
    // The mirror argument, which mmdebstrap writes into the tree's sources.list, is unchanged.
    expect(args.slice(-3)).toEqual(['trixie', '/t', 'http://deb.debian.org/debian']);
  });
});

