import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';

/** One apt source, as a profile names it (`deb URI SUITE COMPONENTS`). */
export interface AptSourceSpec {
  uri: string;
  suites: string[];
  components: string[];
  /** An OpenPGP keyring for this archive; without one, the host's trusted keys are used (as mmdebstrap does). */
  signedBy?: string;
}

/**
 * The host's apt on a private source list and state directory, for one architecture:
 * asks a Debian archive which versions it has and downloads `.deb`s without touching the
 * host's own apt state, sources, pins or foreign architectures.
 */
export class PrivateApt {
  private constructor(
    private readonly dir: string,
    private readonly arch: string,
  ) {}

  static async open(sources: AptSourceSpec[], arch: string, parentDir: string): Promise<PrivateApt> {
    await mkdir(parentDir, { recursive: true });
    const dir = await mkdtemp(join(parentDir, '.memu-apt-'));
    for (const d of ['parts', 'preferences', 'state/lists/partial', 'cache/archives/partial']) await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, 'status'), '');
    const lines = sources.flatMap((s) => s.suites.map((suite) => `deb [arch=${arch}${s.signedBy ? ` signed-by=${s.signedBy}` : ''}] ${s.uri} ${suite} ${s.components.join(' ')}`));
    await writeFile(join(dir, 'sources.list'), `${lines.join('\n')}\n`);
    return new PrivateApt(dir, arch);
  }

  private options(): string[] {
    const o = (setting: string) => ['-o', setting];
    return [
      ...o(`Dir::Etc::SourceList=${join(this.dir, 'sources.list')}`),
      ...o(`Dir::Etc::SourceParts=${join(this.dir, 'parts')}`),
      ...o(`Dir::Etc::PreferencesParts=${join(this.dir, 'preferences')}`),
      ...o(`Dir::Etc::Preferences=${join(this.dir, 'preferences', 'none')}`),
      ...o(`Dir::State=${join(this.dir, 'state')}`),
      ...o(`Dir::State::status=${join(this.dir, 'status')}`),
      ...o(`Dir::Cache=${join(this.dir, 'cache')}`),
      ...o(`APT::Architecture=${this.arch}`),
      ...o(`APT::Architectures=${this.arch}`),
      ...o('Debug::NoLocking=1'),
    ];
  }

  /** Fetches the archive's indexes; throws with apt's message when the archive cannot be reached. */
  async update(): Promise<void> {
    await runCommand('apt-get', [...this.options(), '-q', 'update']);
  }

  /** Every version the archive offers for each package name (`apt-cache madison`). */
  async availableVersions(names: string[]): Promise<Map<string, Set<string>>> {
    const found = new Map<string, Set<string>>();
    if (names.length === 0) return found;
    // madison exits non-zero when some name is unknown, and still lists the others.
    const { stdout } = await runCommandOutcome('apt-cache', [...this.options(), 'madison', ...names]);
    for (const line of stdout.split('\n')) {
      const [name, version] = line.split('|').map((s) => s.trim());
      if (!name || !version) continue;
      if (!found.has(name)) found.set(name, new Set());
      found.get(name)!.add(version);
    }
    return found;
  }

  /** The archive's index fields of one package version (`apt-cache show name=version`). */
  async indexFields(name: string, version: string): Promise<Record<string, string>> {
    const { stdout } = await runCommand('apt-cache', [...this.options(), 'show', '--no-all-versions', `${name}=${version}`]);
    const fields: Record<string, string> = {};
    for (const line of stdout.split('\n')) {
      const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
      if (m) fields[m[1]!] ??= m[2]!;
    }
    return fields;
  }

  /** Downloads `name=version` packages into `destDir` (apt checks each against the signed index); returns the new files. */
  async download(specs: string[], destDir: string): Promise<string[]> {
    await mkdir(destDir, { recursive: true });
    const before = new Set(await readdir(destDir));
    await runCommand('apt-get', [...this.options(), '-q', 'download', ...specs], { cwd: destDir });
    return (await readdir(destDir)).filter((f) => f.endsWith('.deb') && !before.has(f)).map((f) => join(destDir, f));
  }

  async close(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}
