import { open, readdir, rename, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDirectory, fsyncFile } from '../files/durable-files.ts';
import { runCommandOutcome } from '../process/run-command.ts';
import { isNotFound } from '../errors.ts';

/**
 * Files in the root directory of a FAT file system, without mounting it: on a disk
 * image or block device through mtools (`-i TARGET@@OFFSET`), or in a directory where
 * the FAT is already mounted through ordinary file calls. Used by the agent (preseed)
 * and by `memu preseed` on the host, so both read and write the same way.
 */

/** GPT partition types that hold a FAT file system we may use. */
export const FAT_GPT_TYPES = {
  efiSystem: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  microsoftBasicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
} as const;
/** MBR partition types of FAT file systems (FAT12/16/32, LBA, EFI). */
const FAT_MBR_TYPES = new Set(['1', '4', '6', 'b', 'c', 'e', 'ef']);

/** Where a FAT file system starts inside a target. `partition` is null for a bare FAT. */
export interface FatLocation {
  target: string;
  partition: number | null;
  /** Byte offset of the file system inside `target`. */
  offset: number;
  /** The partition's device node as sfdisk names it (e.g. /dev/sdb1), when there is one. */
  node?: string;
}

export type FatErrorKind =
  | 'tool-missing'
  | 'no-fat-partition'
  | 'unreadable'
  | 'write-failed'
  | 'mounted'
  /** A name the write needs is taken by a directory. */
  | 'not-a-file'
  /** Too little free space; nothing was replaced. */
  | 'full'
  /** What was read back differs from what was written; nothing was replaced. */
  | 'read-back-differs';

export class FatAccessError extends Error {
  constructor(
    readonly kind: FatErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'FatAccessError';
  }
}

export interface FatVolume {
  /** Human description for logs, e.g. "disk.img partition 1 at byte 1048576". */
  readonly description: string;
  /** Set for disk images and block devices; absent for a mounted directory. */
  readonly location?: FatLocation;
  /** Names of the regular files in the root directory. */
  listRoot(): Promise<string[]>;
  /** Reads a root file found by listRoot; 'too-large' once it exceeds maxBytes. */
  readFile(name: string, maxBytes: number): Promise<Buffer | 'too-large'>;
  /**
   * Replaces `name` so that a power cut leaves either the old file, or the complete new
   * file under `name` or `tempName`: write `tempName`, sync, check it, rename over
   * `name`, sync. Refuses (and changes nothing) when a directory has either name or the
   * file system has too little space; a short or wrong `tempName` is deleted, never
   * renamed over `name`.
   */
  writeFileAtomic(name: string, tempName: string, data: Buffer): Promise<void>;
  /** Deletes a root file; absent is fine. */
  removeFile(name: string): Promise<void>;
}

/**
 * Opens the FAT file system in `target`: a directory (mounted FAT), a bare FAT image
 * or partition node, or a whole disk (image or block device) whose partition table
 * names a FAT partition (the first one is used). Throws FatAccessError.
 */
export async function openFatVolume(target: string): Promise<FatVolume> {
  const info = await stat(target).catch((err: NodeJS.ErrnoException) => {
    throw new FatAccessError('unreadable', `cannot open ${target}: ${err.code ?? err.message}`);
  });
  if (info.isDirectory()) return new DirectoryFatVolume(target);
  if (!info.isFile() && !info.isBlockDevice()) {
    throw new FatAccessError('unreadable', `${target} is neither a disk image, a block device nor a directory`);
  }
  const location = await locateFatPartition(target);
  return new MtoolsFatVolume(location, info.isBlockDevice());
}

/** Finds the first FAT partition in `target`'s partition table with `sfdisk --json`. */
export async function locateFatPartition(target: string): Promise<FatLocation> {
  const result = await runTool('sfdisk', ['--json', target], { env: { LC_ALL: 'C' } });
  if (result.code !== 0) {
    // No partition table at all: the target may be the FAT partition itself.
    if (/does not contain a recognized partition table/.test(result.stderr)) return { target, partition: null, offset: 0 };
    throw new FatAccessError('unreadable', `cannot read the partition table of ${target}: ${oneLine(result.stderr)}`);
  }
  let table: SfdiskTable;
  try {
    table = (JSON.parse(result.stdout.toString('utf8')) as { partitiontable: SfdiskTable }).partitiontable;
  } catch {
    throw new FatAccessError('unreadable', `sfdisk printed an unexpected partition table for ${target}`);
  }
  const partitions = table.partitions ?? [];
  // A FAT boot sector looks like an empty DOS table to sfdisk.
  if (partitions.length === 0) return { target, partition: null, offset: 0 };
  const sectorSize = table.sectorsize ?? 512;
  const isFat = (type: string) =>
    table.label === 'gpt'
      ? Object.values(FAT_GPT_TYPES).includes(type.toUpperCase() as never)
      : FAT_MBR_TYPES.has(type.toLowerCase());
  const fat = partitions.find((p) => isFat(p.type));
  if (!fat) {
    throw new FatAccessError(
      'no-fat-partition',
      `${target} has a ${table.label} partition table without a FAT partition (EFI system or Microsoft basic data)`,
    );
  }
  const number = Number(/(\d+)$/.exec(fat.node)?.[1] ?? partitions.indexOf(fat) + 1);
  return { target, partition: number, offset: fat.start * sectorSize, node: fat.node };
}

interface SfdiskTable {
  label: string;
  sectorsize?: number;
  partitions?: { node: string; start: number; size: number; type: string }[];
}

/**
 * Device nodes of `device` and its partitions that are mounted, with their mount
 * points (via lsblk). Empty for a regular file.
 */
export async function mountedNodes(device: string): Promise<{ path: string; mountpoints: string[] }[]> {
  const info = await stat(device);
  if (!info.isBlockDevice()) return [];
  const result = await runTool('lsblk', ['--json', '-o', 'PATH,MOUNTPOINTS', device]);
  if (result.code !== 0) throw new FatAccessError('unreadable', `lsblk ${device} failed: ${result.stderr.trim()}`);
  type Node = { path: string; mountpoints?: (string | null)[]; children?: Node[] };
  const found: { path: string; mountpoints: string[] }[] = [];
  const visit = (node: Node) => {
    const mountpoints = (node.mountpoints ?? []).filter((m): m is string => Boolean(m));
    if (mountpoints.length) found.push({ path: node.path, mountpoints });
    node.children?.forEach(visit);
  };
  (JSON.parse(result.stdout.toString('utf8')) as { blockdevices: Node[] }).blockdevices.forEach(visit);
  return found;
}


class MtoolsFatVolume implements FatVolume {
  readonly description: string;
  private readonly image: string;

  constructor(
    readonly location: FatLocation,
    private readonly isBlockDevice: boolean,
  ) {
    this.image = `${location.target}@@${location.offset}`;
    this.description =
      location.partition === null
        ? `${location.target} (whole FAT file system)`
        : `${location.target} partition ${location.partition} at byte ${location.offset}`;
  }

  async listRoot(): Promise<string[]> {
    return (await this.rootEntries()).filter((e) => !e.directory).map((e) => e.name);
  }

  private async rootEntries(): Promise<{ name: string; directory: boolean }[]> {
    // -b: bare "::/NAME" lines (directories end in "/"); -a: include hidden files.
    const result = await this.mtools('mdir', ['-b', '-a', '::/']);
    if (result.code !== 0) {
      throw new FatAccessError('unreadable', `no readable FAT file system in ${this.description}: ${oneLine(result.stderr)}`);
    }
    return result.stdout
      .toString('utf8')
      .split('\n')
      .filter((line) => line.startsWith('::/'))
      .map((line) => (line.endsWith('/') ? { name: line.slice(3, -1), directory: true } : { name: line.slice(3), directory: false }));
  }

  async readFile(name: string, maxBytes: number): Promise<Buffer | 'too-large'> {
    const result = await this.mtools('mtype', [`::/${name}`], { maxStdout: maxBytes });
    if (result.truncated) return 'too-large';
    if (result.code !== 0) {
      throw new FatAccessError('unreadable', `cannot read ${name} from ${this.description}: ${oneLine(result.stderr)}`);
    }
    return result.stdout;
  }

  async writeFileAtomic(name: string, tempName: string, data: Buffer): Promise<void> {
    await this.refuseIfMounted();
    const entries = await this.rootEntries();
    refuseDirectoryNames(this.description, entries, [name, tempName]);
    await this.refuseIfTooSmall(name, data.length, entries.some((e) => sameFatName(e.name, tempName)) ? tempName : undefined);

    const copy = await this.mtools('mcopy', ['-o', '-', `::/${tempName}`], { input: data });
    if (copy.code !== 0) {
      throw new FatAccessError('write-failed', `cannot write ${tempName} to ${this.description}: ${oneLine(copy.stderr)}`);
    }
    await fsyncFile(this.location.target);
    // mcopy exits 0 when the FAT fills up mid-copy, leaving a short file: check before the rename.
    await this.checkWritten(name, tempName, data);
    // -D o: replace an existing `name` in the same mtools run (mtools drops the old
    // entry and renames the temporary one); the sync below makes the result durable.
    const move = await this.mtools('mren', ['-D', 'o', `::/${tempName}`, `::/${name}`]);
    if (move.code !== 0) {
      throw new FatAccessError('write-failed', `cannot rename ${tempName} to ${name} on ${this.description}: ${oneLine(move.stderr)}`);
    }
    await fsyncFile(this.location.target);
  }

  /** The new file needs its clusters while the old one still exists; an old `tempName` is overwritten, so its clusters count as free. */
  private async refuseIfTooSmall(name: string, bytes: number, oldTempName: string | undefined): Promise<void> {
    const { freeBytes, clusterBytes } = await this.space();
    const reclaimable = oldTempName ? (await this.clustersOf(oldTempName)) * clusterBytes : 0;
    const needed = Math.ceil(bytes / clusterBytes) * clusterBytes;
    if (needed > freeBytes + reclaimable) {
      throw new FatAccessError('full', `the FAT file system in ${this.description} is full: ${freeBytes + reclaimable} bytes free, writing ${name} needs ${needed}`);
    }
  }

  private async checkWritten(name: string, tempName: string, data: Buffer): Promise<void> {
    // With no room to extend the directory, mcopy leaves no entry at all (and still exits 0).
    const present = (await this.rootEntries()).some((e) => !e.directory && sameFatName(e.name, tempName));
    const written = present ? await this.readFile(tempName, data.length) : Buffer.alloc(0);
    if (written !== 'too-large' && written.equals(data)) return;
    if (present) {
      // The partial file may hold part of a secret, and it must never stand in for `name`.
      await this.mtools('mdel', [`::/${tempName}`]);
      await fsyncFile(this.location.target);
    }
    if (written !== 'too-large' && written.length < data.length) {
      const { freeBytes } = await this.space();
      throw new FatAccessError(
        'full',
        `the FAT file system in ${this.description} filled up while writing ${name}: ${written.length} of ${data.length} bytes were written, ${freeBytes} bytes are free`,
      );
    }
    throw new FatAccessError('read-back-differs', `${tempName} read back from ${this.description} differs from what was written`);
  }

  /** Free bytes and the cluster size, from mdir's summary line and minfo's boot sector dump. */
  private async space(): Promise<{ freeBytes: number; clusterBytes: number }> {
    const dir = await this.mtools('mdir', ['-a', '::/']);
    const info = await this.mtools('minfo', ['::']);
    const text = info.stdout.toString('utf8');
    const free = /^\s*([\d ]+) bytes free\s*$/m.exec(dir.stdout.toString('utf8'));
    const sector = /^sector size: (\d+) bytes$/m.exec(text);
    const cluster = /^cluster size: (\d+) sectors$/m.exec(text);
    if (dir.code !== 0 || info.code !== 0 || !free || !sector || !cluster) {
      throw new FatAccessError('unreadable', `cannot read the free space of ${this.description}: ${oneLine(dir.stderr || info.stderr)}`);
    }
    return { freeBytes: Number(free[1]!.replace(/ /g, '')), clusterBytes: Number(sector[1]) * Number(cluster[1]) };
  }

  private async clustersOf(name: string): Promise<number> {
    const result = await this.mtools('mdu', ['-a', `::/${name}`]);
    const clusters = /\s(\d+)\s*$/.exec(result.stdout.toString('utf8').trim().split('\n')[0] ?? '');
    return result.code === 0 && clusters ? Number(clusters[1]) : 0;
  }

  async removeFile(name: string): Promise<void> {
    const names = await this.listRoot();
    const existing = names.find((n) => sameFatName(n, name));
    if (!existing) return;
    await this.refuseIfMounted();
    const result = await this.mtools('mdel', [`::/${existing}`]);
    if (result.code !== 0) {
      throw new FatAccessError('write-failed', `cannot delete ${name} on ${this.description}: ${oneLine(result.stderr)}`);
    }
    await fsyncFile(this.location.target);
  }

  /** Writing under a mounted FAT would corrupt it: the kernel caches its own view. */
  private async refuseIfMounted(): Promise<void> {
    if (!this.isBlockDevice) return;
    const mounted = await mountedNodes(this.location.target);
    const fatNodes = [this.location.target, this.location.node].filter(Boolean);
    const hit = mounted.find((m) => fatNodes.includes(m.path));
    if (hit) {
      throw new FatAccessError('mounted', `${hit.path} is mounted at ${hit.mountpoints.join(', ')}; pass that directory instead, or unmount it`);
    }
  }

  private mtools(command: string, args: string[], opts: { input?: Buffer; maxStdout?: number } = {}) {
    // LC_ALL=C: the free-space line is parsed.
    return runTool(command, ['-i', this.image, ...args], { ...opts, env: { MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C' } });
  }
}

class DirectoryFatVolume implements FatVolume {
  readonly description: string;

  constructor(private readonly dir: string) {
    this.description = `${dir} (mounted FAT)`;
  }

  async listRoot(): Promise<string[]> {
    try {
      const entries = await readdir(this.dir, { withFileTypes: true });
      return entries.filter((e) => e.isFile()).map((e) => e.name);
    } catch (err) {
      throw new FatAccessError('unreadable', `cannot list ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  async readFile(name: string, maxBytes: number): Promise<Buffer | 'too-large'> {
    const path = join(this.dir, name);
    try {
      const fd = await open(path, 'r');
      try {
        const buf = Buffer.alloc(maxBytes + 1);
        let length = 0;
        while (length < buf.length) {
          const { bytesRead } = await fd.read(buf, length, buf.length - length);
          if (bytesRead === 0) break;
          length += bytesRead;
        }
        return length > maxBytes ? 'too-large' : buf.subarray(0, length);
      } finally {
        await fd.close();
      }
    } catch (err) {
      throw new FatAccessError('unreadable', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  async writeFileAtomic(name: string, tempName: string, data: Buffer): Promise<void> {
    const entries = await readdir(this.dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      throw new FatAccessError('unreadable', `cannot list ${this.dir}: ${err.code ?? err}`);
    });
    refuseDirectoryNames(this.description, entries.map((e) => ({ name: e.name, directory: e.isDirectory() })), [name, tempName]);
    const temp = join(this.dir, tempName);
    try {
      const fd = await open(temp, 'w', 0o600);
      try {
        await fd.writeFile(data);
        await fd.sync();
      } finally {
        await fd.close();
      }
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        const fs = await statfs(this.dir);
        throw new FatAccessError('full', `${this.dir} is full: ${fs.bavail * fs.bsize} bytes free, writing ${name} needs ${data.length}`);
      }
      throw new FatAccessError('write-failed', `cannot write ${name} in ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    try {
      await rename(temp, join(this.dir, name));
      await fsyncDirectory(this.dir);
    } catch (err) {
      throw new FatAccessError('write-failed', `cannot write ${name} in ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }

  async removeFile(name: string): Promise<void> {
    try {
      await unlink(join(this.dir, name));
      await fsyncDirectory(this.dir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw new FatAccessError('write-failed', `cannot delete ${name} in ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
}

/** FAT compares names without regard to case. */
function sameFatName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** Writing "into" a directory of that name would leave the real name unwritten; refuse before changing anything. */
function refuseDirectoryNames(where: string, entries: { name: string; directory: boolean }[], names: string[]): void {
  const directory = entries.find((e) => e.directory && names.some((n) => sameFatName(e.name, n)));
  if (directory) {
    throw new FatAccessError('not-a-file', `${where} has a directory named ${directory.name} where a file of that name belongs`);
  }
}

function oneLine(text: string): string {
  return text.trim().replace(/\s*\n\s*/g, '; ') || 'no error message';
}

/** sfdisk, lsblk and mtools, with "not installed" turned into a FatAccessError naming the package. */
async function runTool(
  command: string,
  args: string[],
  opts: { input?: Buffer; maxStdout?: number; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: Buffer; stderr: string; truncated: boolean }> {
  // stdin is never a terminal, so mtools cannot stop to ask about name clashes.
  const r = await runCommandOutcome(command, args, { input: opts.input, env: opts.env, maxStdoutBytes: opts.maxStdout });
  if (r.notInstalled) {
    const pkg = command === 'sfdisk' ? 'fdisk' : command === 'lsblk' ? 'util-linux' : 'mtools';
    throw new FatAccessError('tool-missing', `${command} is not installed; install the Debian package ${pkg}`);
  }
  return { code: r.code ?? 1, stdout: r.stdoutBytes, stderr: r.stderr, truncated: r.truncated };
}
