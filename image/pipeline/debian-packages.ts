import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonDurably, readJsonIfPresent } from '../../shared/files/durable-files.ts';
import { runCommand } from '../../shared/process/run-command.ts';

/**
 * The Debian packages of a root filesystem, as the manifest records them, and what the
 * deb cache keeps about them so a later build can install exactly those versions again.
 */
export interface RecordedPackage {
  name: string;
  version: string;
  arch: string;
}

/** Installed packages, read from the tree's dpkg database with the host's dpkg-query. */
export async function listInstalledPackages(tree: string): Promise<RecordedPackage[]> {
  const { stdout } = await runCommand('dpkg-query', [`--admindir=${join(tree, 'var/lib/dpkg')}`, '-W', '-f=${Package}\t${Version}\t${Architecture}\n']);
  return stdout
    .trim()
    .split('\n')
    .map((l) => l.split('\t'))
    .map(([name = '', version = '', arch = '']) => ({ name, version, arch }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The file name apt gives a downloaded package (`bsdutils_1%3a2.41-5_amd64.deb`: the epoch's colon escaped). */
export function debFileName(p: RecordedPackage): string {
  return `${p.name}_${p.version.replaceAll(':', '%3a')}_${p.arch}.deb`;
}

export function packageSpec(p: RecordedPackage): string {
  return `${p.name}=${p.version} (${p.arch})`;
}

/** Stanzas of an apt index (`Packages`): blank-line separated `Field: value` blocks, continuation lines skipped. */
export function parseIndexStanzas(text: string): Record<string, string>[] {
  const stanzas: Record<string, string>[] = [];
  for (const block of text.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    for (const line of block.split('\n')) {
      const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (m) fields[m[1]!] = m[2]!;
    }
    if (fields.Package) stanzas.push(fields);
  }
  return stanzas;
}

/**
 * The archive's overrides (`Priority`, `Section`) of each package version a build
 * installed, kept beside the .debs (`archive-overrides.json`). The archive's priority can
 * differ from the one in the package's own control file, and mmdebstrap installs the
 * `required` ones explicitly (everything else is marked automatically installed), so a
 * rebuild from the cache needs the archive's word to mark the same packages.
 */
export const ARCHIVE_OVERRIDES_FILE = 'archive-overrides.json';

export interface ArchiveOverride {
  priority: string;
  section: string;
}

const overrideKey = (p: RecordedPackage) => `${p.name} ${p.version} ${p.arch}`;

export async function readArchiveOverrides(debCache: string): Promise<Map<string, ArchiveOverride>> {
  const stored = (await readJsonIfPresent(join(debCache, ARCHIVE_OVERRIDES_FILE))) as Record<string, ArchiveOverride> | undefined;
  return new Map(Object.entries(stored ?? {}));
}

export function archiveOverrideOf(overrides: Map<string, ArchiveOverride>, p: RecordedPackage): ArchiveOverride | undefined {
  return overrides.get(overrideKey(p));
}

/** Adds overrides for `packages` to the deb cache's record (later ones win). */
export async function storeArchiveOverrides(debCache: string, found: [RecordedPackage, ArchiveOverride][]): Promise<void> {
  if (found.length === 0) return;
  const merged = await readArchiveOverrides(debCache);
  for (const [p, o] of found) merged.set(overrideKey(p), o);
  await writeJsonDurably(join(debCache, ARCHIVE_OVERRIDES_FILE), Object.fromEntries([...merged].sort(([a], [b]) => a.localeCompare(b))));
}

/** The overrides of `installed` found in the apt indexes (`*_Packages`) under `listsDir`. */
export async function overridesInIndexes(listsDir: string, installed: RecordedPackage[]): Promise<[RecordedPackage, ArchiveOverride][]> {
  const wanted = new Map(installed.map((p) => [overrideKey(p), p]));
  const found = new Map<string, [RecordedPackage, ArchiveOverride]>();
  for (const name of (await readdir(listsDir)).filter((n) => n.endsWith('_Packages')).sort()) {
    for (const s of parseIndexStanzas(await readFile(join(listsDir, name), 'utf8'))) {
      const p = wanted.get(overrideKey({ name: s.Package!, version: s.Version ?? '', arch: s.Architecture ?? '' }));
      if (p && s.Priority) found.set(overrideKey(p), [p, { priority: s.Priority, section: s.Section ?? 'misc' }]);
    }
  }
  return [...found.values()];
}
