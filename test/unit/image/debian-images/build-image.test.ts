import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { definitionEntries, undeclaredOwners } from '../../../../image/debian-images/build-image.ts';
import { nonRootPathsIn } from '../../../../image/debian-images/root-tree.ts';
import { validateDefinition } from '../../../../image/debian-images/definition.ts';
import { loadDefinition } from '../../../../image/debian-images/definitions/index.ts';
import { valkey } from '../../../../image/debian-images/definitions/valkey.ts';

/** The definition layer: what an image adds over its packages. */
describe("the definition's layer", () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'memu-definition-layer-'));
    // What the packages already have.
    await mkdir(join(root, 'etc/valkey'), { recursive: true });
    await mkdir(join(root, 'usr/share'), { recursive: true });
    await symlink('usr/lib', join(root, 'lib'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const packages = [
    { name: 'valkey-server', version: '8.1.1+dfsg1-3', arch: 'amd64' },
    { name: 'base-files', version: '13.8', arch: 'amd64' },
  ];

  it('holds passwd, group, the package list and the declared files with their owners, and only the parents the packages lack', async () => {
    const entries = await definitionEntries(loadDefinition('valkey'), packages, root);
    const summary = entries.map((e) => `${e.path} ${e.type} ${'mode' in e ? e.mode.toString(8) : ''} ${e.uid}:${e.gid}`);
    expect(summary).toEqual([
      'etc/passwd file 644 0:0',
      'etc/group file 644 0:0',
      'usr/share/memu/packages.list file 644 0:0',
      'etc/nsswitch.conf file 644 0:0',
      'var/lib/valkey directory 750 999:999',
      'etc/valkey directory 2770 999:999',
      'etc/valkey/valkey.conf file 640 999:999',
      // Parents the packages do not have (etc, etc/valkey and usr/share are theirs, so left alone).
      'usr/share/memu directory 755 0:0',
      'var/lib directory 755 0:0',
      'var directory 755 0:0',
    ]);
    const list = entries.find((e) => e.path === 'usr/share/memu/packages.list');
    expect(list?.type === 'file' && Buffer.isBuffer(list.content) && list.content.toString()).toBe('base-files 13.8 amd64\nvalkey-server 8.1.1+dfsg1-3 amd64\n');
  });

  it('refuses a declared path below a link of the packages (it would replace the link with a directory)', async () => {
    const d = validateDefinition({ ...valkey, files: [{ kind: 'file', path: '/lib/memu/x', content: '' }] }, 'test');
    const err = (await definitionEntries(d, packages, root).catch((e: unknown) => e)) as MemuError;
    expect(err).toBeInstanceOf(MemuError);
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toBe('image valkey declares /lib/memu/x, but /lib is a link in its packages');
  });
});

describe('paths the packages give to users other than root', () => {
  const listing = [
    'drwxr-xr-x root/root         0 2025-10-15 01:08 ./',
    'drwxr-xr-x root/root         0 2025-10-15 01:08 ./etc/',
    'drwxrws--- valkey/valkey     0 2025-10-15 01:08 ./etc/valkey/',
    '-rw-r----- root/adm        120 2025-10-15 01:08 ./var/log/app.log',
    'lrwxrwxrwx root/root         0 2025-10-15 01:08 ./usr/bin/valkey-server -> valkey-check-rdb',
    'hrwxr-xr-x root/root         0 2025-10-15 01:08 ./usr/bin/b link to ./usr/bin/a',
  ].join('\n');

  it('are read from the package listing', () => {
    expect(nonRootPathsIn(listing)).toEqual(['/etc/valkey', '/var/log/app.log']);
  });

  it('must each be declared with an owner in the definition', () => {
    expect(undeclaredOwners(loadDefinition('valkey'), [{ package: 'valkey-tools', paths: nonRootPathsIn(listing) }])).toEqual(['/var/log/app.log (valkey-tools)']);
  });
});
