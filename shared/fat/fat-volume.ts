import { open, readdir, rename, stat, unlink } from 'node:fs/promises';
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

export type FatErrorKind = 'tool-missing' | 'no-fat-partition' | 'unreadable' | 'write-failed' | 'mounted';

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
   * file under `name` or `tempName`: write `tempName`, sync, rename over `name`, sync.
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
    // -b: bare "::/NAME" lines (directories end in "/"); -a: include hidden files.
    const result = await this.mtools('mdir', ['-b', '-a', '::/']);
    if (result.code !== 0) {
      throw new FatAccessError('unreadable', `no readable FAT file system in ${this.description}: ${oneLine(result.stderr)}`);
    }
    return result.stdout
      .toString('utf8')
      .split('\n')
      .filter((line) => line.startsWith('::/') && !line.endsWith('/'))
      .map((line) => line.slice(3));
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
    const copy = await this.mtools('mcopy', ['-o', '-', `::/${tempName}`], { input: data });
    if (copy.code !== 0) {
      throw new FatAccessError('write-failed', `cannot write ${tempName} to ${this.description}: ${oneLine(copy.stderr)}`);
    }
    await fsyncFile(this.location.target);
    // -D o: replace an existing `name` in the same mtools run (mtools drops the old
    // entry and renames the temporary one); the sync below makes the result durable.
    const move = await this.mtools('mren', ['-D', 'o', `::/${tempName}`, `::/${name}`]);
    if (move.code !== 0) {
      throw new FatAccessError('write-failed', `cannot rename ${tempName} to ${name} on ${this.description}: ${oneLine(move.stderr)}`);
    }
    await fsyncFile(this.location.target);
  }

  async removeFile(name: string): Promise<void> {
    const names = await this.listRoot();
    const existing = names.find((n) => n.toLowerCase() === name.toLowerCase());
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
    return runTool(command, ['-i', this.image, ...args], { ...opts, env: { MTOOLS_SKIP_CHECK: '1' } });
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
    const temp = join(this.dir, tempName);
    try {
      const fd = await open(temp, 'w', 0o600);
      try {
        await fd.writeFile(data);
        await fd.sync();
      } finally {
        await fd.close();
      }
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
