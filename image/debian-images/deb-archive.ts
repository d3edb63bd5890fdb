import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory } from '../../shared/files/durable-files.ts';
import { CommandError, runCommandOutcome } from '../../shared/process/run-command.ts';
import { ExitCode, MemuError } from '../host/errors.ts';
import { debFileName } from '../pipeline/debian-packages.ts';
import { PrivateApt } from '../pipeline/private-apt.ts';
import type { ImageDefinition } from './definition.ts';
import { parseRelations } from './debian-versions.ts';
import type { PackageArchive, PackageControl } from './resolve-packages.ts';

/**
 * A Debian archive for one architecture, through the pipeline's private apt (its own
 * source list and state directory, the host's apt untouched), with the downloaded .debs
 * kept in a deb cache so a package version is fetched once. apt checks each download
 * against the archive's signed index; the control fields are then read from the .deb.
 */
export class DebianArchive implements PackageArchive {
  private constructor(
    private readonly apt: PrivateApt,
    private readonly arch: string,
    private readonly debDir: string,
  ) {}

  /** Asks the archive for its indexes; apt's state lives in a temporary directory under `workDir`. */
  static async open(archive: ImageDefinition['archive'], arch: string, debDir: string, workDir: string): Promise<DebianArchive> {
    await mkdir(debDir, { recursive: true });
    const source = { uri: archive.uri, suites: [archive.suite], components: archive.components, signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' };
    const apt = await PrivateApt.open([source], arch, workDir);
    try {
      await apt.update();
    } catch (err) {
      await apt.close();
      const why = err instanceof CommandError ? err.outcome.stderr.trim().split('\n').slice(-3).join(' / ') || err.message : (err as Error).message;
      throw new MemuError(
        `the Debian archive ${archive.uri} (${archive.suite}, ${arch}) could not be asked for packages: ${why}`,
        ExitCode.environment,
        'connect to the archive once; afterwards the resolved package set and its .debs are cached and builds run offline',
      );
    }
    return new DebianArchive(apt, arch, debDir);
  }

  versions(names: string[]): Promise<Map<string, Set<string>>> {
    return this.apt.availableVersions(names);
  }

  async controls(wanted: { name: string; version: string }[]): Promise<PackageControl[]> {
    const missing = [];
    for (const w of wanted) if (!(await cachedDeb(this.debDir, { ...w, arch: this.arch }))) missing.push(w);
    if (missing.length > 0) {
      // Beside the cache, on its file system: a download is renamed in whole.
      const download = join(this.debDir, `.download-${process.pid}`);
      await rm(download, { recursive: true, force: true });
      try {
        for (const file of await this.apt.download(missing.map((w) => `${w.name}=${w.version}`), download)) {
          const control = await readControl(file);
          await rename(file, join(this.debDir, debFileName(control)));
        }
        await fsyncDirectory(this.debDir);
      } finally {
        await rm(download, { recursive: true, force: true });
      }
    }
    return Promise.all(
      wanted.map(async (w) => {
        const path = await cachedDeb(this.debDir, { ...w, arch: this.arch });
        if (!path) throw new Error(`apt downloaded no .deb for ${w.name}=${w.version} (${this.arch})`);
        return readControl(path, w);
      }),
    );
  }

  async close(): Promise<void> {
    await this.apt.close();
  }
}

/** The cached .deb of a package version: named as apt names it, for the architecture or `all`. */
export async function cachedDeb(debDir: string, p: { name: string; version: string; arch: string }): Promise<string | undefined> {
  for (const arch of [p.arch, 'all']) {
    const path = join(debDir, debFileName({ name: p.name, version: p.version, arch }));
    if (await stat(path).then((s) => s.isFile(), () => false)) return path;
  }
  return undefined;
}

/** Control fields of a .deb (`dpkg-deb --field`), checked against the version expected of it. */
export async function readControl(debPath: string, expected?: { name: string; version: string }): Promise<PackageControl> {
  const r = await runCommandOutcome('dpkg-deb', ['--field', debPath, 'Package', 'Version', 'Architecture', 'Pre-Depends', 'Depends', 'Provides']);
  if (r.notInstalled) throw new MemuError('missing host tool: dpkg-deb (Debian package dpkg)', ExitCode.environment, 'run scripts/setup-host');
  if (r.code !== 0) throw new MemuError(`${debPath} is not a readable Debian package: ${r.stderr.trim()}`, ExitCode.badInput, 'delete it from the deb cache; the next build fetches it again');
  const fields = parseControlFields(r.stdout);
  const control: PackageControl = {
    name: fields.Package ?? '',
    version: fields.Version ?? '',
    arch: fields.Architecture ?? '',
    depends: [...parseRelations(fields['Pre-Depends']), ...parseRelations(fields.Depends)],
    provides: parseRelations(fields.Provides).map((group) => group[0]!),
    debPath,
  };
  if (expected && (control.name !== expected.name || control.version !== expected.version)) {
    throw new MemuError(
      `${debPath} holds ${control.name} ${control.version}, not ${expected.name} ${expected.version}`,
      ExitCode.badInput,
      'delete it from the deb cache; the next build fetches it again',
    );
  }
  return control;
}

/** `Field: value` lines with folded continuation lines joined. */
export function parseControlFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  let last: string | undefined;
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
    if (m) {
      last = m[1]!;
      fields[last] = m[2]!.trim();
    } else if (last && /^\s/.test(line) && line.trim()) {
      fields[last] += ` ${line.trim()}`;
    }
  }
  return fields;
}
