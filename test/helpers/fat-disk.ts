import { execFile } from 'node:child_process';
import { open, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const SECTOR = 512;

/** GPT partition type names as sfdisk's script format accepts them. */
const TYPES = {
  esp: 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B',
  basicData: 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7',
  linux: '0FC63DAF-8483-4772-8E79-3D69D8477DE4',
} as const;

export interface TestPartition {
  type: keyof typeof TYPES;
  sizeMiB: number;
  /** Make a FAT file system in it (real mkfs.vfat --offset, no loop device). */
  fat?: boolean;
  /** Extra mkfs.vfat options, e.g. ['-F', '32', '-s', '1'] for FAT32 with 512-byte clusters. */
  mkfsOptions?: string[];
}

export interface TestDisk {
  path: string;
  /** Byte offset of each partition, in table order. */
  offsets: number[];
}

/**
 * Builds a sparse GPT disk image with sfdisk, like a small Memu disk: by default an
 * ESP (FAT) and a Linux partition. Partitions start on 1 MiB boundaries.
 */
export async function makeGptDisk(
  dir: string,
  partitions: TestPartition[] = [
    { type: 'esp', sizeMiB: 16, fat: true },
    { type: 'linux', sizeMiB: 8 },
  ],
  name = 'disk.img',
): Promise<TestDisk> {
  const path = join(dir, name);
  const totalMiB = 1 + partitions.reduce((sum, p) => sum + p.sizeMiB, 0) + 1; // GPT headers at both ends
  await (await open(path, 'w')).close();
  await truncate(path, totalMiB * MiB);
  const offsets: number[] = [];
  let startMiB = 1;
  const script = ['label: gpt'];
  for (const p of partitions) {
    offsets.push(startMiB * MiB);
    script.push(`start=${(startMiB * MiB) / SECTOR}, size=${(p.sizeMiB * MiB) / SECTOR}, type=${TYPES[p.type]}`);
    startMiB += p.sizeMiB;
  }
  await run('sfdisk', ['--quiet', path], `${script.join('\n')}\n`);
  for (const [i, p] of partitions.entries()) {
    if (!p.fat) continue;
    // mkfs.vfat's block count is in KiB; --offset is in sectors.
    await run('mkfs.vfat', ['-n', 'MEMUBOOT', ...(p.mkfsOptions ?? []), '--offset', String(offsets[i]! / SECTOR), path, String(p.sizeMiB * 1024)]);
  }
  return { path, offsets };
}

/** A bare FAT file system image (no partition table), like a partition node on the device. */
export async function makeBareFat(dir: string, sizeMiB = 8, name = 'fat.img'): Promise<string> {
  const path = join(dir, name);
  await run('mkfs.vfat', ['-C', path, String(sizeMiB * 1024)]);
  return path;
}

/** Overwrites the FAT boot sector at `offset` with bytes no FAT driver accepts. */
export async function corruptBootSector(path: string, offset: number): Promise<void> {
  const fd = await open(path, 'r+');
  try {
    await fd.write(Buffer.alloc(SECTOR, 0xa5), 0, SECTOR, offset);
  } finally {
    await fd.close();
  }
}

/** Independent view through mtools: the names in the root of the FAT at `offset`. */
export async function listFatRoot(path: string, offset: number): Promise<string[]> {
  const { stdout } = await execFileAsync('mdir', ['-b', '-a', '-i', `${path}@@${offset}`, '::/'], { env: mtoolsEnv() });
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('::/') && !l.endsWith('/'))
    .map((l) => l.slice(3));
}

/** Independent view through mtools: a root file's bytes. */
export async function readFatFile(path: string, offset: number, name: string): Promise<string> {
  const { stdout } = await execFileAsync('mtype', ['-i', `${path}@@${offset}`, `::/${name}`], { env: mtoolsEnv() });
  return stdout;
}

/** Puts a file on the FAT with plain mtools, as another tool (or a person) would. */
export async function putFatFile(path: string, offset: number, name: string, content: string | Buffer): Promise<void> {
  await run('mcopy', ['-o', '-i', `${path}@@${offset}`, '-', `::/${name}`], content);
}

/** Makes a directory in the root of the FAT, as a person with a file manager might. */
export async function makeFatDirectory(path: string, offset: number, name: string): Promise<void> {
  await execFileAsync('mmd', ['-i', `${path}@@${offset}`, `::/${name}`], { env: mtoolsEnv() });
}

/** Independent view through mtools: the names inside a directory of the FAT. */
export async function listFatDirectory(path: string, offset: number, name: string): Promise<string[]> {
  const { stdout } = await execFileAsync('mdir', ['-b', '-a', '-i', `${path}@@${offset}`, `::/${name}`], { env: mtoolsEnv() });
  return stdout.split('\n').filter((l) => l.startsWith('::/'));
}

/** Free bytes of the FAT at `offset`, as mdir reports them. */
export async function fatFreeBytes(path: string, offset: number): Promise<number> {
  const { stdout } = await execFileAsync('mdir', ['-a', '-i', `${path}@@${offset}`, '::/'], { env: mtoolsEnv() });
  const free = /([\d ]+) bytes free/.exec(stdout);
  if (!free) throw new Error(`mdir printed no free space:\n${stdout}`);
  return Number(free[1]!.replace(/ /g, ''));
}

/** Fills the FAT with one file of zeros named `name`, leaving `leaveBytes` (a multiple of the cluster size) free. */
export async function fillFat(path: string, offset: number, leaveBytes: number, name = 'FILL'): Promise<void> {
  const free = await fatFreeBytes(path, offset);
  await putFatFile(path, offset, name, Buffer.alloc(free - leaveBytes));
  const left = await fatFreeBytes(path, offset);
  if (left !== leaveBytes) throw new Error(`filling the FAT left ${left} bytes free, not ${leaveBytes}`);
}

function mtoolsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C' };
}

function run(cmd: string, args: string[], input?: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env: mtoolsEnv() }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolve();
    });
    // A tool that does not read its input (mkfs.vfat) may exit before it is written: its
    // exit status, reported above, is what counts, not the broken pipe.
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') reject(err);
    });
    child.stdin?.end(input ?? '');
  });
}

/**
 * The smallest image a QA station flashes in tests: a GPT with an 8 MiB FAT first partition
 * (where the station writes each unit's preseed and key) and a token Linux partition.
 * Small on purpose: the flash, a clone and every mtools sync cost time in proportion.
 */
export async function makeStationTestImage(dir: string): Promise<string> {
  return (
    await makeGptDisk(dir, [
      { type: 'esp', sizeMiB: 8, fat: true },
      { type: 'linux', sizeMiB: 1 },
    ])
  ).path;
}
