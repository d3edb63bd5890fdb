import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PartitionTarget } from './assemble.ts';
import { runCommand } from '../../shared/process/run-command.ts';

/**
 * Makes an ext4 filesystem inside a disk image file at a partition's offset with `mke2fs -d` (no loop device, no mount),
 * reproducibly: fixed UUID and directory hash seed, E2FSPROGS_FAKE_TIME for the
 * superblock, and afterwards every inode's atime/ctime/crtime pinned to the epoch with
 * debugfs (mke2fs copies them from the source files, and ctime cannot be set there).
 */
export async function makeExt4(opts: {
  target: PartitionTarget;
  uuid: string;
  label: string;
  sourceDir?: string;
  epoch: number;
  /** Blocks reserved for root, in percent: keeps a full data disk from stopping the agent. */
  reservedPercent?: number;
}): Promise<void> {
  const { file, offsetBytes, sizeBytes } = opts.target;
  // One -E with every extended option: mke2fs keeps only the last -E it is given.
  const extended = [`hash_seed=${opts.uuid}`, `offset=${offsetBytes}`].join(',');
  const args = ['-q', '-F', '-t', 'ext4', '-b', '4096', '-U', opts.uuid, '-E', extended, '-L', opts.label, '-m', String(opts.reservedPercent ?? 5)];
  if (opts.sourceDir) args.push('-d', opts.sourceDir);
  args.push(file, `${Math.floor(sizeBytes / 1024)}k`);
  await runCommand('mke2fs', args, { env: { E2FSPROGS_FAKE_TIME: String(opts.epoch) } });
  await pinInodeTimes(e2fsDevice(opts.target), opts.epoch);
}

/** How libext2fs names a filesystem inside a bigger file: `file?offset=N`. */
export function e2fsDevice(t: Pick<PartitionTarget, 'file' | 'offsetBytes'>): string {
  return t.offsetBytes ? `${t.file}?offset=${t.offsetBytes}` : t.file;
}

/** Inode numbers in use, from dumpe2fs's per-group free-inode ranges. */
export async function usedInodes(file: string): Promise<number[]> {
  const { stdout } = await runCommand('dumpe2fs', [file]);
  const ipgMatch = /Inodes per group:\s+(\d+)/.exec(stdout);
  if (!ipgMatch) throw new Error(`dumpe2fs did not report inodes per group for ${file}`);
  const perGroup = Number(ipgMatch[1]);
  const used: number[] = [];
  const groupRe = /^Group (\d+):[\s\S]*?^\s+Free inodes: ?(.*)$/gm;
  for (let m = groupRe.exec(stdout); m; m = groupRe.exec(stdout)) {
    const group = Number(m[1]);
    const free = new Set<number>();
    for (const part of (m[2] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      for (let i = a!; i <= (b ?? a!); i++) free.add(i);
    }
    for (let ino = group * perGroup + 1; ino <= (group + 1) * perGroup; ino++) if (!free.has(ino)) used.push(ino);
  }
  return used;
}

export async function pinInodeTimes(device: string, epoch: number): Promise<number> {
  const hex = `0x${epoch.toString(16)}`;
  // Reserved inodes 1 and 3-10 hold no files; inode 2 is the root directory.
  const inodes = (await usedInodes(device)).filter((i) => i === 2 || i >= 11);
  const script = inodes.map((i) => `sif <${i}> atime ${hex}\nsif <${i}> ctime ${hex}\nsif <${i}> crtime ${hex}\n`).join('');
  const scriptFile = join(tmpdir(), `memu-pin-times-${process.pid}-${Date.now()}`);
  await writeFile(scriptFile, script);
  try {
    // debugfs stamps the superblock's last-write time on close; the fake time pins it too.
    const { stderr } = await runCommand('debugfs', ['-w', '-f', scriptFile, device], { env: { E2FSPROGS_FAKE_TIME: String(epoch) } });
    const problems = stderr.split('\n').filter((l) => /error|invalid|bad/i.test(l));
    if (problems.length) throw new Error(`debugfs could not pin inode times in ${device}: ${problems.slice(0, 3).join('; ')}`);
  } finally {
    await rm(scriptFile, { force: true });
  }
  return inodes.length;
}
