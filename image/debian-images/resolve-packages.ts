import { ExitCode, MemuError } from '../host/errors.ts';
import { compareDebianVersions, formatRelation, satisfies, type DependencyGroup, type PackageRelation } from './debian-versions.ts';

/**
 * The package set of an image: the packages a definition asks for and, round by round,
 * their Depends and Pre-Depends (never Recommends), minus the dependencies the definition
 * skips. apt's own resolver (`apt-get install --download-only`) cannot leave a dependency
 * out, and with nothing installed it pulls every maintainer script's helpers (debconf,
 * adduser and with it perl, iproute2 for one `ss` call): an image whose packages are only
 * unpacked would carry them unused. So the choice is made here, from the archive's
 * answers; every version constraint is checked at the end.
 */

/** One package version's control fields, from its .deb. */
export interface PackageControl {
  name: string;
  version: string;
  arch: string;
  depends: DependencyGroup[];
  provides: PackageRelation[];
  debPath: string;
}

/** What the resolver asks of an archive (the private apt and the deb cache in production). */
export interface PackageArchive {
  /** Every version offered for each name; a name with none is virtual or unknown. */
  versions(names: string[]): Promise<Map<string, Set<string>>>;
  /** The control fields of these package versions, fetching their .debs where needed. */
  controls(wanted: { name: string; version: string }[]): Promise<PackageControl[]>;
}

export interface Resolution {
  /** Sorted by name. */
  packages: PackageControl[];
  /** Each skipped dependency with the packages that asked for it; a skip nothing asked for is not listed. */
  skipped: { package: string; neededBy: string[] }[];
}

interface OpenDependency {
  /** The package that depends, or undefined for a package the definition asks for. */
  from?: string;
  group: DependencyGroup;
}

export function highestVersion(versions: Iterable<string>): string {
  const sorted = [...versions].sort(compareDebianVersions);
  const last = sorted.at(-1);
  if (last === undefined) throw new Error('no version to choose from');
  return last;
}

export async function resolvePackages(archive: PackageArchive, requested: readonly string[], skip: readonly string[]): Promise<Resolution> {
  const chosen = new Map<string, PackageControl>();
  const providedBy = new Map<string, PackageControl[]>();
  const skipSet = new Set(skip);
  const skipped = new Map<string, Set<string>>();
  const provides = (name: string) => chosen.has(name) || providedBy.has(name);
  const all: OpenDependency[] = requested.map((name) => ({ group: [{ name }] }));
  let open = [...all];

  while (open.length > 0) {
    const unresolved = open.filter((d) => !d.group.some((alt) => provides(alt.name)) && !isSkipped(d, skipSet, skipped));
    const offered = await archive.versions([...new Set(unresolved.flatMap((d) => d.group.map((alt) => alt.name)))]);
    const wanted = new Map<string, string>();
    for (const d of unresolved) {
      if (d.group.some((alt) => wanted.has(alt.name))) continue;
      // The first alternative the archive has, as apt picks it.
      const alt = d.group.find((a) => offered.get(a.name)?.size);
      if (alt) wanted.set(alt.name, highestVersion(offered.get(alt.name)!));
    }
    if (wanted.size === 0) break;
    open = [];
    for (const control of await archive.controls([...wanted].map(([name, version]) => ({ name, version })))) {
      chosen.set(control.name, control);
      for (const p of control.provides) providedBy.set(p.name, [...(providedBy.get(p.name) ?? []), control]);
      const deps = control.depends.map((group) => ({ from: control.name, group }));
      all.push(...deps);
      open.push(...deps);
    }
    // A virtual dependency may be met by a package chosen in a later round.
    open.push(...unresolved.filter((d) => !d.group.some((alt) => wanted.has(alt.name))));
  }

  const problems = all.filter((d) => !isSkipped(d, skipSet, skipped)).flatMap((d) => unmet(d, chosen, providedBy));
  if (problems.length > 0) {
    throw new MemuError(
      `the image's packages cannot be resolved:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
      ExitCode.badInput,
      'ask for a package that provides a virtual dependency in packages, or skip a dependency the image does not need (skipDependencies, with the reason)',
    );
  }
  return {
    packages: [...chosen.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    skipped: [...skipped].map(([pkg, by]) => ({ package: pkg, neededBy: [...by].sort() })).sort((a, b) => (a.package < b.package ? -1 : 1)),
  };
}

function isSkipped(d: OpenDependency, skip: Set<string>, skipped: Map<string, Set<string>>): boolean {
  if (!d.from) return false;
  const hit = d.group.find((alt) => skip.has(alt.name));
  if (!hit) return false;
  skipped.set(hit.name, (skipped.get(hit.name) ?? new Set()).add(d.from));
  return true;
}

/** Why a dependency is not met by the chosen set, if it is not. */
function unmet(d: OpenDependency, chosen: Map<string, PackageControl>, providedBy: Map<string, PackageControl[]>): string[] {
  const meets = (alt: PackageRelation) => {
    const real = chosen.get(alt.name);
    if (real && satisfies(real.version, alt.constraint)) return true;
    // A versioned dependency is met only by a versioned Provides (Debian Policy 7.5).
    return (providedBy.get(alt.name) ?? []).some((p) => {
      const provided = p.provides.find((x) => x.name === alt.name)!;
      return alt.constraint ? provided.constraint?.relation === '=' && satisfies(provided.constraint.version, alt.constraint) : true;
    });
  };
  if (d.group.some(meets)) return [];
  const what = d.group.map(formatRelation).join(' | ');
  const who = d.from ? `${d.from} depends on ${what}` : `the definition asks for ${what}`;
  const found = d.group.map((alt) => chosen.get(alt.name)).filter((p): p is PackageControl => p !== undefined);
  if (found.length > 0) return [`${who}, but the archive has ${found.map((p) => `${p.name} ${p.version}`).join(', ')}`];
  return [`${who}, which the archive does not have${d.from ? ' and no chosen package provides' : ''}`];
}
