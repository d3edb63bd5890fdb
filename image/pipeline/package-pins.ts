import { createHash } from 'node:crypto';
import { lstat, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { HardwareProfile } from '../../hardware/profile.ts';
import { fsyncDirectory } from '../../shared/files/durable-files.ts';
import { CommandError, runCommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import type { Logger } from '../host/log.ts';
import { repoRoot } from '../host/repo-root.ts';
import { readImageManifest } from '../release/image-manifest.ts';
import {
  archiveOverrideOf,
  debFileName,
  packageSpec,
  parseIndexStanzas,
  readArchiveOverrides,
  storeArchiveOverrides,
  type ArchiveOverride,
  type RecordedPackage,
} from './debian-packages.ts';
import { PrivateApt, type AptSourceSpec } from './private-apt.ts';

/**
 * Pinned builds (`memu build --packages-from OLD/manifest.json`): the root filesystem gets
 * exactly the package versions an earlier build recorded, so a shipped release can be
 * rebuilt after the archive moved on. Same package versions, same bytes.
 *
 * Every version comes from the deb cache (`<cache>/debs/<suite>-<arch>/`, filled by every
 * build); what is not there is fetched from the profile's archive when it still has it.
 * The versions are then served to mmdebstrap as a local flat repository made by
 * apt-ftparchive (with the archive's priorities as overrides, and a Release file naming
 * the suite), and it is the only source apt sees: it cannot pick any other version.
 */
export interface PinnedPackages {
  /** The earlier build: its version and the sha256 of its manifest. */
  from: { manifest: string; version: string; manifestSha256: string };
  packages: RecordedPackage[];
  /** sha256 of the pinned versions, part of the root filesystem's cache key. */
  sha256: string;
  /** The local repository (Packages, Release and the .debs) mmdebstrap installs from. */
  repoDir: string;
}

export async function preparePinnedPackages(opts: {
  manifestPath: string;
  profile: HardwareProfile;
  /** The packages the build asks for by name; each must be among the pinned ones. */
  includePackages: readonly string[];
  debCache: string;
  workDir: string;
  log: Logger;
}): Promise<PinnedPackages> {
  const pins = await readPins(opts.manifestPath, opts.profile, opts.includePackages);
  const missing: RecordedPackage[] = [];
  for (const p of pins.packages) if (!(await isFile(join(opts.debCache, debFileName(p))))) missing.push(p);
  if (missing.length > 0) {
    opts.log.info({ missing: missing.length, of: pins.packages.length }, 'pinned package versions missing from the deb cache; asking the archive');
    await fetchFromArchive(missing, opts.profile, opts.debCache, opts.manifestPath, opts.workDir);
  }
  const overrides = await readArchiveOverrides(opts.debCache);
  const withoutOverride = pins.packages.filter((p) => !archiveOverrideOf(overrides, p));
  if (withoutOverride.length > 0) {
    opts.log.warn(
      { packages: withoutOverride.map(packageSpec) },
      "no archive priority recorded for these package versions: their control files' priorities are used, so which packages are marked automatically installed (and with it the image bytes) may differ from the earlier build",
    );
  }
  const repoDir = join(opts.workDir, 'pinned-packages');
  await makeLocalRepository(repoDir, pins.packages, opts.debCache, opts.profile.rootfs.suite, (p) => archiveOverrideOf(overrides, p));
  opts.log.info({ from: opts.manifestPath, packages: pins.packages.length, fetched: missing.length }, 'package versions pinned');
  return { ...pins, repoDir };
}

async function readPins(manifestPath: string, profile: HardwareProfile, includePackages: readonly string[]): Promise<Omit<PinnedPackages, 'repoDir'>> {
  const path = resolve(manifestPath);
  const { manifest, sha256 } = await readImageManifest(path);
  const hint = `pass the manifest.json of an earlier build of ${profile.name}`;
  if (manifest.profile !== profile.name || manifest.arch !== profile.arch) {
    throw new MemuError(`${path} is the manifest of a ${manifest.profile} (${manifest.arch}) build, not ${profile.name} (${profile.arch})`, ExitCode.badInput, hint);
  }
  const foreign = manifest.packages.filter((p) => p.arch !== profile.arch && p.arch !== 'all');
  if (foreign.length > 0) throw new MemuError(`${path} names packages of another architecture: ${foreign.map(packageSpec).join(', ')}`, ExitCode.badInput, hint);
  const names = new Set(manifest.packages.map((p) => p.name));
  const unpinned = includePackages.filter((n) => !names.has(n));
  if (unpinned.length > 0) {
    throw new MemuError(
      `the build installs ${unpinned.join(', ')}, which ${path} does not name: a pinned build installs the same package set as the earlier one`,
      ExitCode.badInput,
      'build from the same profile and package list as the earlier build, or drop --packages-from',
    );
  }
  const packages = [...manifest.packages].sort((a, b) => a.name.localeCompare(b.name));
  const pinsText = packages.map((p) => `${p.name}=${p.version}:${p.arch}\n`).join('');
  return {
    from: { manifest: path, version: manifest.version, manifestSha256: sha256 },
    packages,
    sha256: createHash('sha256').update(pinsText).digest('hex'),
  };
}

function archiveSources(profile: HardwareProfile): AptSourceSpec[] {
  return [
    { uri: profile.rootfs.mirror, suites: [profile.rootfs.suite], components: profile.rootfs.components },
    ...profile.rootfs.extraAptSources.map((s) => ({ uri: s.uri, suites: s.suites, components: s.components, signedBy: s.keyring ? resolve(repoRoot, s.keyring) : undefined })),
  ];
}

/**
 * Downloads the missing versions into the deb cache, with the archive's overrides for
 * them, or fails naming every one the archive does not have.
 */
async function fetchFromArchive(missing: RecordedPackage[], profile: HardwareProfile, debCache: string, manifestPath: string, workDir: string): Promise<void> {
  const list = missing.map(packageSpec).join(', ');
  const apt = await PrivateApt.open(archiveSources(profile), profile.arch, workDir);
  try {
    try {
      await apt.update();
    } catch (err) {
      const why = err instanceof CommandError ? err.outcome.stderr.trim().split('\n').slice(-3).join(' / ') : (err as Error).message;
      throw new MemuError(
        `${missing.length} package versions from ${manifestPath} are not in the deb cache ${debCache}, and the archive ${profile.rootfs.mirror} could not be asked (${why}): ${list}`,
        ExitCode.environment,
        'connect to the archive, or copy the .debs of the earlier build into the deb cache',
      );
    }
    const offered = await apt.availableVersions([...new Set(missing.map((p) => p.name))]);
    const unavailable = missing.filter((p) => !offered.get(p.name)?.has(p.version));
    if (unavailable.length > 0) {
      throw new MemuError(
        `${unavailable.length === 1 ? 'this package version' : `these ${unavailable.length} package versions`} from ${manifestPath} ${unavailable.length === 1 ? 'is' : 'are'} neither in the deb cache ${debCache} nor in the archive (${profile.rootfs.mirror} ${profile.rootfs.suite}): ${unavailable.map(packageSpec).join(', ')}`,
        ExitCode.badInput,
        "copy the earlier build's .debs into that directory (its deb cache), or point the profile's mirror at an archive snapshot that has them (snapshot.debian.org)",
      );
    }
    // Beside the deb cache, on its file system (downloads are renamed in), but not in it:
    // everything in the deb cache is copied into the root filesystem while it is built.
    const download = join(dirname(debCache), `.download-${process.pid}`);
    await rm(download, { recursive: true, force: true });
    try {
      await apt.download(missing.map((p) => `${p.name}=${p.version}`), download);
      const found: [RecordedPackage, ArchiveOverride][] = [];
      for (const p of missing) {
        // apt names its downloads as its archive cache does; the repository's index check proves each.
        await rename(join(download, debFileName(p)), join(debCache, debFileName(p)));
        const fields = await apt.indexFields(p.name, p.version);
        if (fields.Priority) found.push([p, { priority: fields.Priority, section: fields.Section ?? 'misc' }]);
      }
      await fsyncDirectory(debCache);
      await storeArchiveOverrides(debCache, found);
    } finally {
      await rm(download, { recursive: true, force: true });
    }
  } finally {
    await apt.close();
  }
}

/**
 * A flat apt repository of exactly `packages`: links to the cached .debs, a Packages
 * index by apt-ftparchive with the archive's priorities and sections as its override
 * file, and a Release naming the suite (mmdebstrap picks the essential and required
 * packages of that suite by it). The index is checked to list exactly the pins, so a
 * cached file whose name does not match its contents is caught.
 */
async function makeLocalRepository(dir: string, packages: RecordedPackage[], debCache: string, suite: string, overrideOf: (p: RecordedPackage) => ArchiveOverride | undefined): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const p of packages) await symlink(join(debCache, debFileName(p)), join(dir, debFileName(p)));
  const overrideFile = `${dir}.override`;
  const overrideLines = packages.flatMap((p) => {
    const o = overrideOf(p);
    return o ? [`${p.name} ${o.priority} ${o.section}`] : [];
  });
  await writeFile(overrideFile, `${overrideLines.join('\n')}\n`);

  const packagesIndex = await ftparchive(['packages', '.', overrideFile], dir);
  await writeFile(join(dir, 'Packages'), packagesIndex);
  const listed = parseIndexStanzas(packagesIndex).map((s) => `${s.Package}=${s.Version}:${s.Architecture}`).sort();
  const wanted = packages.map((p) => `${p.name}=${p.version}:${p.arch}`).sort();
  const unexpected = listed.filter((x) => !wanted.includes(x));
  const absent = wanted.filter((x) => !listed.includes(x));
  if (unexpected.length || absent.length) {
    throw new MemuError(
      `the deb cache ${debCache} holds files whose names do not match their packages (index lists ${unexpected.join(', ') || 'nothing else'}; missing ${absent.join(', ') || 'nothing'})`,
      ExitCode.badInput,
      'delete the mismatching .debs from the deb cache and build again (they are fetched anew)',
    );
  }
  // Written beside the directory first: `release` hashes the index files it finds in it.
  const release = await ftparchive(['-o', `APT::FTPArchive::Release::Suite=${suite}`, '-o', `APT::FTPArchive::Release::Codename=${suite}`, 'release', '.'], dir);
  await writeFile(join(dir, 'Release'), release);
  await rm(overrideFile, { force: true });
}

async function ftparchive(args: string[], cwd: string): Promise<string> {
  const r = await runCommandOutcome('apt-ftparchive', args, { cwd });
  if (r.notInstalled) {
    throw new MemuError('missing host tool: apt-ftparchive (Debian package apt-utils), which pinned builds make their local repository with', ExitCode.environment, 'run scripts/setup-host, or apt-get install apt-utils');
  }
  if (r.code !== 0) throw new CommandError('apt-ftparchive', r);
  return r.stdout;
}

async function isFile(path: string): Promise<boolean> {
  return lstat(path).then((s) => s.isFile(), () => false);
}
