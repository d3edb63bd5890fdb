import { describe, expect, it } from 'vitest';
import { ExitCode, MemuError } from '../../../../image/host/errors.ts';
import { parseRelations } from '../../../../image/debian-images/debian-versions.ts';
import { resolvePackages, type PackageArchive, type PackageControl } from '../../../../image/debian-images/resolve-packages.ts';

/** An archive in memory: `name: { version: { depends, provides } }`, counting what it was asked. */
function fakeArchive(packages: Record<string, Record<string, { depends?: string; provides?: string }>>) {
  const asked = { versions: 0, controls: [] as string[] };
  const archive: PackageArchive = {
    async versions(names) {
      asked.versions++;
      return new Map(names.filter((n) => packages[n]).map((n) => [n, new Set(Object.keys(packages[n]!))]));
    },
    async controls(wanted) {
      return wanted.map(({ name, version }): PackageControl => {
        asked.controls.push(`${name}=${version}`);
        const p = packages[name]![version]!;
        return { name, version, arch: 'amd64', depends: parseRelations(p.depends), provides: parseRelations(p.provides).map((g) => g[0]!), debPath: `/debs/${name}.deb` };
      });
    },
  };
  return { archive, asked };
}

const names = (r: { packages: PackageControl[] }) => r.packages.map((p) => `${p.name}=${p.version}`);

describe('resolving the package set of an image', () => {
  it('follows Pre-Depends and Depends to the end, takes the highest version, and fetches each package once', async () => {
    const { archive, asked } = fakeArchive({
      nginx: { '1.26.3-3': { depends: 'libc6 (>= 2.34), libssl3t64 (>= 3.0.0), nginx-common (= 1.26.3-3)' } },
      'nginx-common': { '1.26.3-3': {} },
      libc6: { '2.41-12': { depends: 'libgcc-s1' }, '2.41-9': {} },
      libssl3t64: { '3.5.9-1': { depends: 'libc6 (>= 2.38), zlib1g' } },
      'libgcc-s1': { '14.2.0-19': { depends: 'libc6 (>= 2.35)' } },
      zlib1g: { '1:1.3-1': {} },
    });
    const r = await resolvePackages(archive, ['nginx'], []);
    expect(names(r)).toEqual(['libc6=2.41-12', 'libgcc-s1=14.2.0-19', 'libssl3t64=3.5.9-1', 'nginx=1.26.3-3', 'nginx-common=1.26.3-3', 'zlib1g=1:1.3-1']);
    expect(asked.controls.sort()).toEqual(names(r).sort());
    // One round per level of the dependency tree, not one question per package.
    expect(asked.versions).toBeLessThanOrEqual(4);
  });

  it('leaves out a skipped dependency and says who needed it, also as one of several alternatives', async () => {
    const { archive } = fakeArchive({
      nginx: { '1': { depends: 'iproute2, nginx-common' } },
      'nginx-common': { '1': { depends: 'debconf (>= 0.5) | debconf-2.0' } },
      iproute2: { '6': { depends: 'libbpf1' } },
      libbpf1: { '1.5': {} },
      debconf: { '1.5': {} },
    });
    const r = await resolvePackages(archive, ['nginx'], ['iproute2', 'debconf']);
    expect(names(r)).toEqual(['nginx=1', 'nginx-common=1']);
    expect(r.skipped).toEqual([
      { package: 'debconf', neededBy: ['nginx-common'] },
      { package: 'iproute2', neededBy: ['nginx'] },
    ]);
    // Without the skips, they come along.
    expect(names(await resolvePackages(archive, ['nginx'], []))).toEqual(['debconf=1.5', 'iproute2=6', 'libbpf1=1.5', 'nginx=1', 'nginx-common=1']);
  });

  it('never skips a package the definition asks for by name', async () => {
    const { archive } = fakeArchive({ busybox: { '1': {} } });
    expect(names(await resolvePackages(archive, ['busybox'], ['busybox']))).toEqual(['busybox=1']);
  });

  it('takes the first alternative the archive has', async () => {
    const { archive } = fakeArchive({ app: { '1': { depends: 'gone | second | third' } }, second: { '1': {} }, third: { '1': {} } });
    expect(names(await resolvePackages(archive, ['app'], []))).toEqual(['app=1', 'second=1']);
  });

  it('meets a virtual dependency through a chosen package that provides it, with a version only when provided with one', async () => {
    const { archive } = fakeArchive({
      'base-files': { '13': { depends: 'awk' } },
      app: { '1': { depends: 'libssl3 (>= 3.0)' } },
      libssl3t64: { '3.5': { provides: 'libssl3 (= 3.5)' } },
      mawk: { '1.3': { provides: 'awk' } },
    });
    expect(names(await resolvePackages(archive, ['base-files', 'mawk'], []))).toEqual(['base-files=13', 'mawk=1.3']);
    expect(names(await resolvePackages(archive, ['app', 'libssl3t64'], []))).toEqual(['app=1', 'libssl3t64=3.5']);
    const err = (await resolvePackages(archive, ['base-files'], []).catch((e: unknown) => e)) as MemuError;
    expect(err).toBeInstanceOf(MemuError);
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toContain('base-files depends on awk, which the archive does not have and no chosen package provides');
  });

  it('checks every version constraint and names each one not met', async () => {
    const { archive } = fakeArchive({
      app: { '1': { depends: 'libc6 (>= 2.42), tool (<< 2)' } },
      libc6: { '2.41': {} },
      tool: { '2.1': {} },
    });
    const err = (await resolvePackages(archive, ['app'], []).catch((e: unknown) => e)) as MemuError;
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect(err.message).toContain('app depends on libc6 (>= 2.42), but the archive has libc6 2.41');
    expect(err.message).toContain('app depends on tool (<< 2), but the archive has tool 2.1');
  });

  it('refuses a package the archive does not have', async () => {
    const { archive } = fakeArchive({});
    await expect(resolvePackages(archive, ['valkey-server'], [])).rejects.toThrow('the definition asks for valkey-server, which the archive does not have');
  });
});
