import { readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { runCommand } from '../../shared/process/run-command.ts';
import { isNotFound } from '../../shared/errors.ts';

/**
 * The drives `memu flash` could write, as lsblk sees them, and the rules that
 * keep it from wiping the wrong one.
 */

export interface BlockPartition {
  path: string;
  sizeBytes: number;
  fstype?: string;
  label?: string;
  /** Mount points of the partition and of anything stacked on it (LVM, LUKS); "[SWAP]" for swap. */
  mountpoints: string[];
}

export interface BlockDevice {
  path: string;
  name: string;
  /** lsblk's TYPE: disk, loop, part, ... */
  type: string;
  sizeBytes: number;
  model?: string;
  vendor?: string;
  serial?: string;
  /** usb, nvme, sata, mmc, loop (with the backing file as model), ... */
  transport?: string;
  removable: boolean;
  readOnly: boolean;
  partitions: BlockPartition[];
  /** Mount points on the disk itself or any of its partitions. */
  mountpoints: string[];
  /** Holds the running system's root or /boot. */
  system: boolean;
  /** Why `memu flash` refuses this drive whatever the image; undefined = allowed. */
  refusal?: string;
  /** True when the only reason for refusal is a mount that `--unmount` can clear. */
  refusalClearedByUnmount: boolean;
}

interface LsblkNode {
  name: string;
  kname?: string;
  path?: string;
  type: string;
  size: number | string | null;
  model?: string | null;
  vendor?: string | null;
  serial?: string | null;
  tran?: string | null;
  rm?: boolean | string | number | null;
  ro?: boolean | string | number | null;
  fstype?: string | null;
  label?: string | null;
  'maj:min'?: string;
  mountpoint?: string | null;
  mountpoints?: Array<string | null>;
  children?: LsblkNode[];
}

const systemMountpoints = ['/', '/boot', '/boot/efi', '/boot/firmware', '/usr'];

function truthy(v: boolean | string | number | null | undefined): boolean {
  return v === true || v === 1 || v === '1' || v === 'true';
}

function clean(s: string | null | undefined): string | undefined {
  const t = s?.trim();
  return t ? t : undefined;
}

function mountpointsOf(n: LsblkNode): string[] {
  const list = n.mountpoints ?? (n.mountpoint !== undefined ? [n.mountpoint] : []);
  return list.filter((m): m is string => typeof m === 'string' && m.length > 0);
}

function descendants(n: LsblkNode): LsblkNode[] {
  return (n.children ?? []).flatMap((c) => [c, ...descendants(c)]);
}

interface MountEntry {
  target: string;
  source?: string;
  'maj:min'?: string;
}

/** The mount holding `path`: the longest mount point that is `path` or a parent of it. */
function mountHolding(path: string, mounts: MountEntry[]): MountEntry | undefined {
  return mounts
    .filter((m) => path === m.target || path.startsWith(m.target === '/' ? '/' : `${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

/** Device numbers and device paths of the filesystems holding /, /boot and friends. */
async function systemDeviceIds(): Promise<{ majMin: Set<string>; paths: Set<string> }> {
  const majMin = new Set<string>();
  const paths = new Set<string>();
  let mounts: MountEntry[] = [];
  try {
    // One listing of every mount; the mount holding each system path is picked from it.
    const { stdout } = await runCommand('findmnt', ['-J', '-l', '-n', '-o', 'TARGET,SOURCE,MAJ:MIN']);
    mounts = (JSON.parse(stdout) as { filesystems: MountEntry[] }).filesystems;
  } catch {
    // findmnt missing: the lsblk mount points and the device numbers below still count.
  }
  await Promise.all(
    systemMountpoints.map(async (mount) => {
      const fs = mountHolding(mount, mounts);
      if (fs?.['maj:min']) majMin.add(fs['maj:min']);
      // btrfs subvolumes show as /dev/sda2[/@root].
      const source = fs?.source?.replace(/\[.*\]$/, '');
      if (source?.startsWith('/dev/')) paths.add(await realpath(source).catch(() => source));
      try {
        // The device number of the filesystem itself, for when findmnt cannot tell.
        const { dev } = await stat(mount);
        majMin.add(`${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)}`);
      } catch {
        // no such directory
      }
    }),
  );
  return { majMin, paths };
}

async function loopBackingFile(name: string): Promise<string | undefined> {
  return clean(await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => undefined));
}

async function runLsblk(args: string[]): Promise<LsblkNode[]> {
  const { stdout } = await runCommand('lsblk', ['--json', '--bytes', '--output-all', ...args]);
  return (JSON.parse(stdout) as { blockdevices: LsblkNode[] }).blockdevices;
}

function describe(n: LsblkNode, system: { majMin: Set<string>; paths: Set<string> }, backingFile: string | undefined): BlockDevice {
  const path = n.path ?? `/dev/${n.name}`;
  const below = descendants(n);
  const all = [n, ...below];
  const mountpoints = all.flatMap(mountpointsOf);
  const isSystem =
    mountpoints.some((m) => systemMountpoints.includes(m)) ||
    all.some((d) => (d['maj:min'] && system.majMin.has(d['maj:min'])) || system.paths.has(d.path ?? `/dev/${d.name}`));
  const partitions: BlockPartition[] = (n.children ?? [])
    .filter((c) => c.type === 'part')
    .map((c) => ({
      path: c.path ?? `/dev/${c.name}`,
      sizeBytes: Number(c.size ?? 0),
      ...(clean(c.fstype) ? { fstype: clean(c.fstype)! } : {}),
      ...(clean(c.label) ? { label: clean(c.label)! } : {}),
      mountpoints: [c, ...descendants(c)].flatMap(mountpointsOf),
    }));
  const stacked = below.filter((d) => d.type !== 'part');
  const sizeBytes = Number(n.size ?? 0);
  const readOnly = truthy(n.ro);

  let refusal: string | undefined;
  let clearedByUnmount = false;
  if (isSystem) refusal = 'holds the running system (/ or /boot)';
  else if (readOnly) refusal = 'is read-only (write-protect switch?)';
  else if (sizeBytes === 0) refusal = 'has no medium (size 0)';
  else if (stacked.length > 0 && stacked.some((d) => mountpointsOf(d).length === 0)) {
    refusal = `is in use by ${[...new Set(stacked.map((d) => d.type))].join(', ')} (${stacked.map((d) => d.name).join(', ')})`;
  } else if (mountpoints.length > 0) {
    refusal = `has mounted filesystems (${mountpoints.join(', ')})`;
    clearedByUnmount = true;
  }
  const transport = n.type === 'loop' ? 'loop' : clean(n.tran);
  const model = n.type === 'loop' ? backingFile : clean(n.model);
  return {
    path,
    name: n.name,
    type: n.type,
    sizeBytes,
    ...(model ? { model } : {}),
    ...(clean(n.vendor) ? { vendor: clean(n.vendor)! } : {}),
    ...(clean(n.serial) ? { serial: clean(n.serial)! } : {}),
    ...(transport ? { transport } : {}),
    removable: truthy(n.rm),
    readOnly,
    partitions,
    mountpoints,
    system: isSystem,
    ...(refusal ? { refusal } : {}),
    refusalClearedByUnmount: clearedByUnmount,
  };
}

/** Drive-like devices that are never flash targets (RAM disks, compressed swap, optical drives). */
function isCandidate(n: LsblkNode): boolean {
  if (n.type !== 'disk' && n.type !== 'loop') return false;
  return !/^(zram|ram|sr|fd)\d*/.test(n.name);
}

/** Whole drives (disks and attached loop devices), each with the reason flashing it is refused, if any. */
export async function listBlockDevices(): Promise<BlockDevice[]> {
  const [nodes, system] = await Promise.all([runLsblk([]), systemDeviceIds()]);
  const devices: BlockDevice[] = [];
  for (const n of nodes.filter(isCandidate)) {
    if (n.type === 'loop' && Number(n.size ?? 0) === 0) continue; // a detached loop device
    devices.push(describe(n, system, n.type === 'loop' ? await loopBackingFile(n.name) : undefined));
  }
  return devices;
}

/** What a target path is, as far as the refusal rules care. */
export type TargetDescription =
  | { kind: 'file'; path: string; exists: boolean }
  | { kind: 'block'; path: string; device: BlockDevice; partitionOf?: BlockDevice };

/**
 * Resolves a target path (following /dev/disk/by-id links) to a regular file,
 * a whole drive, or a partition of one.
 */
export async function describeTarget(targetPath: string): Promise<TargetDescription | { kind: 'other'; path: string; what: string }> {
  let resolved: string;
  try {
    resolved = await realpath(targetPath);
  } catch (err) {
    if (isNotFound(err)) return { kind: 'file', path: targetPath, exists: false };
    throw err;
  }
  const st = await stat(resolved);
  if (st.isFile()) return { kind: 'file', path: resolved, exists: true };
  if (!st.isBlockDevice()) return { kind: 'other', path: resolved, what: st.isDirectory() ? 'a directory' : st.isCharacterDevice() ? 'a character device' : 'not a regular file or block device' };

  const [system, [node]] = await Promise.all([systemDeviceIds(), runLsblk([resolved])]);
  if (!node) throw new Error(`lsblk does not know ${resolved}`);
  if (node.type === 'part') {
    // lsblk DEV on a partition lists just it; its disk is found through PKNAME.
    const parentName = (node as LsblkNode & { pkname?: string | null }).pkname;
    const parents = parentName ? await runLsblk([`/dev/${parentName}`]) : [];
    const parentNode = parents[0];
    const parent = parentNode ? describe(parentNode, system, parentNode.type === 'loop' ? await loopBackingFile(parentNode.name) : undefined) : undefined;
    return { kind: 'block', path: resolved, device: describe(node, system, undefined), ...(parent ? { partitionOf: parent } : {}) };
  }
  return { kind: 'block', path: resolved, device: describe(node, system, node.type === 'loop' ? await loopBackingFile(basename(resolved)) : undefined) };
}

/**
 * Why `memu flash` must not write this block device, or undefined when it may.
 * `unmount` means the caller will unmount first, so mounts alone do not refuse.
 */
export function refusalFor(
  target: { device: BlockDevice; partitionOf?: BlockDevice },
  opts: { imageSize: number; allowPartition?: boolean; unmount?: boolean },
): { reason: string; hint: string } | undefined {
  const { device, partitionOf } = target;
  if (device.type === 'part') {
    if (!opts.allowPartition) {
      return { reason: `${device.path} is a partition, not a whole drive`, hint: `flash the whole drive (${partitionOf?.path ?? 'its disk'}), or pass --allow-partition if you really mean this partition` };
    }
    if (partitionOf?.system) return { reason: `${device.path} is on ${partitionOf.path}, which holds the running system (/ or /boot)`, hint: 'choose a partition on another drive' };
  }
  if (device.system) return { reason: `${device.path} holds the running system (/ or /boot)`, hint: 'choose another drive; `memu devices` lists them' };
  if (device.refusal && !(device.refusalClearedByUnmount && opts.unmount)) {
    return {
      reason: `${device.path} ${device.refusal}`,
      hint: device.refusalClearedByUnmount ? 'unmount it first, or pass --unmount to let memu flash unmount it' : 'choose another drive; `memu devices` lists them',
    };
  }
  if (device.sizeBytes < opts.imageSize) {
    return { reason: `${device.path} is too small: ${device.sizeBytes} bytes, the image needs ${opts.imageSize}`, hint: 'use a larger drive' };
  }
  return undefined;
}

/** Unmounts everything mounted from the device (deepest mount points first) and turns off swap on it. */
export async function unmountDevice(device: BlockDevice): Promise<void> {
  const mounts = [...device.mountpoints].sort((a, b) => b.length - a.length);
  for (const m of mounts) {
    if (m === '[SWAP]') continue;
    await runCommand('umount', [m]).catch((err: Error) => {
      throw new Error(`cannot unmount ${m}: ${err.message}`);
    });
  }
  if (device.mountpoints.includes('[SWAP]')) {
    for (const p of [device.path, ...device.partitions.map((x) => x.path)]) {
      await runCommand('swapoff', [p]).catch(() => {});
    }
  }
}
