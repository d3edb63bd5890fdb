import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ARCHIVE_OVERRIDES_FILE,
  archiveOverrideOf,
  debFileName,
  overridesInIndexes,
  parseIndexStanzas,
  readArchiveOverrides,
  storeArchiveOverrides,
} from '../../../../image/pipeline/debian-packages.ts';

const INDEX = [
  'Package: bsdutils',
  'Version: 1:2.41.5-0+deb13u1',
  'Architecture: amd64',
  'Priority: required',
  'Section: utils',
  'Description: basic utilities',
  ' continued description: Priority: optional',
  '',
  'Package: sensible-utils',
  'Version: 0.0.25',
  'Architecture: all',
  'Priority: optional',
  'Section: utils',
  '',
  'Package: sensible-utils',
  'Version: 0.0.24',
  'Architecture: all',
  'Priority: required',
  'Section: utils',
  '',
].join('\n');

describe('Debian package records', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-debs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a cached .deb as apt does, the epoch colon escaped', () => {
    expect(debFileName({ name: 'bsdutils', version: '1:2.41.5-0+deb13u1', arch: 'amd64' })).toBe('bsdutils_1%3a2.41.5-0+deb13u1_amd64.deb');
  });

  it('reads index stanzas field by field, ignoring continuation lines', () => {
    const stanzas = parseIndexStanzas(INDEX);
    expect(stanzas).toHaveLength(3);
    expect(stanzas[0]).toMatchObject({ Package: 'bsdutils', Priority: 'required', Description: 'basic utilities' });
  });

  it("keeps the archive's priority and section of exactly the installed versions, merged over earlier builds", async () => {
    const lists = join(dir, 'lists');
    await mkdir(lists);
    await writeFile(join(lists, 'deb.debian.org_debian_dists_trixie_main_binary-amd64_Packages'), INDEX);
    await writeFile(join(lists, 'deb.debian.org_debian_dists_trixie_InRelease'), 'Package: not-an-index\nPriority: required\n');
    const installed = [
      { name: 'sensible-utils', version: '0.0.25', arch: 'all' },
      { name: 'bsdutils', version: '1:2.41.5-0+deb13u1', arch: 'amd64' },
      { name: 'not-in-the-index', version: '1', arch: 'amd64' },
    ];
    const found = await overridesInIndexes(lists, installed);
    expect(found).toHaveLength(2);
    await storeArchiveOverrides(dir, [[{ name: 'old', version: '1', arch: 'all' }, { priority: 'important', section: 'admin' }]]);
    await storeArchiveOverrides(dir, found);
    const overrides = await readArchiveOverrides(dir);
    expect(archiveOverrideOf(overrides, installed[0]!)).toEqual({ priority: 'optional', section: 'utils' });
    expect(archiveOverrideOf(overrides, installed[1]!)).toEqual({ priority: 'required', section: 'utils' });
    expect(archiveOverrideOf(overrides, { name: 'old', version: '1', arch: 'all' })).toEqual({ priority: 'important', section: 'admin' });
    expect(archiveOverrideOf(overrides, installed[2]!)).toBeUndefined();
    expect(Object.keys(JSON.parse(await readFile(join(dir, ARCHIVE_OVERRIDES_FILE), 'utf8')))).toEqual(['bsdutils 1:2.41.5-0+deb13u1 amd64', 'old 1 all', 'sensible-utils 0.0.25 all']);
  });
});
