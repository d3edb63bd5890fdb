import { constants } from 'node:fs';
import { open, readFile, realpath, stat } from 'node:fs/promises';
import { runCommand, runCommandOutcome } from '../../shared/process/run-command.ts';
import { isNotFound } from '../../shared/errors.ts';

/**
 * The drives `memu flash` could write, as lsblk sees them, and the rules that
 * keep it from wiping the wrong one. The rules are pure functions of what lsblk,
 * findmnt, sysfs and an exclusive open report (`describeDevice`, `refusalFor`), so
 * they are tested from captured output; the functions that gather it are thin.
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
  /** Holds the running system: one of the system mount points lives on it. */
  system: boolean;
  /** Why `memu flash` refuses this drive whatever the image; undefined = allowed. */
  refusal?: string;
  /** True when the only reason for refusal is a mount that `--unmount` can clear. */
  refusalClearedByUnmount: boolean;
}

/** One device as `lsblk --json --bytes --output-all` prints it (the columns the rules read). */
export interface LsblkNode {
  name: string;
  kname?: string;
  path?: string;
  pkname?: string | null;
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

/** One filesystem as `findmnt -J -l -o TARGET,SOURCE,MAJ:MIN` prints it. */
export interface MountEntry {
  target: string;
  source?: string;
  'maj:min'?: string;
}

/** Where the running system lives: a drive holding one of these is never written. */
export const systemMountpoints: readonly string[] = ['/', '/boot', '/boot/efi', '/boot/firmware', '/usr'];

/** The devices holding the system mount points, by device number and by device path, each with the mounts (of the system's) it holds. */
export interface SystemDevices {
  mountpoints: readonly string[];
  byMajMin: Map<string, string[]>;
  byPath: Map<string, string[]>;
}

/** What the rules know about a device besides its lsblk node. */
export interface DeviceFacts {
  system: SystemDevices;
  /** A loop device's backing file (sysfs `loop/backing_file`), shown as its model. */
  backingFile?: string;
  /** Another program holds the device open exclusively (an O_EXCL open fails with EBUSY). */
  busy?: boolean;
}

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

function pathOf(n: LsblkNode): string {
  return n.path ?? `/dev/${n.name}`;
}

/** The mount holding `path`: the longest mount point that is `path` or a parent of it. */
function mountHolding(path: string, mounts: readonly MountEntry[]): MountEntry | undefined {
  return mounts
    .filter((m) => path === m.target || path.startsWith(m.target === '/' ? '/' : `${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

function addTo(map: Map<string, string[]>, key: string, mountpoint: string): void {
  const list = map.get(key) ?? [];
  if (!list.includes(mountpoint)) list.push(mountpoint);
  map.set(key, list);
}

/**
 * The system devices as findmnt's mount table shows them: for each system mount
 * point, the filesystem holding it (so /usr counts even when it is a directory of /),
 * recorded under that filesystem's mount point.
 */
export function systemDevicesFromMounts(mounts: readonly MountEntry[], mountpoints: readonly string[] = systemMountpoints): SystemDevices {
  const system: SystemDevices = { mountpoints, byMajMin: new Map(), byPath: new Map() };
  for (const mountpoint of mountpoints) {
    const fs = mountHolding(mountpoint, mounts);
    if (!fs) continue;
    if (fs['maj:min']) addTo(system.byMajMin, fs['maj:min'], fs.target);
    // btrfs subvolumes show as /dev/sda2[/@root].
    const source = fs.source?.replace(/\[.*\]$/, '');
    if (source?.startsWith('/dev/')) addTo(system.byPath, source, fs.target);
  }
  return system;
}

/** `major:minor` of a stat() device number. */
export function majMinOf(dev: number): string {
  return `${Math.floor(dev / 256) & 0xfff}:${(dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00)}`;
}

/**
 * The system devices of this host: findmnt's table, device paths resolved (a source
 * may be a /dev/disk/by-uuid link), and each mount point's own device number, which
 * still counts when findmnt is missing or cannot tell.
 */
async function findSystemDevices(mountpoints: readonly string[] = systemMountpoints): Promise<SystemDevices> {
  let mounts: MountEntry[] = [];
  try {
    const { stdout } = await runCommand('findmnt', ['-J', '-l', '-n', '-o', 'TARGET,SOURCE,MAJ:MIN']);
    mounts = (JSON.parse(stdout) as { filesystems: MountEntry[] }).filesystems;
  } catch {
    // findmnt missing: lsblk's mount points and the device numbers below still count.
  }
  const system = systemDevicesFromMounts(mounts, mountpoints);
  for (const [source, held] of [...system.byPath]) {
    const resolved = await realpath(source).catch(() => source);
    for (const m of held) addTo(system.byPath, resolved, m);
  }
  await Promise.all(
    mountpoints
      .filter((m) => !mountHolding(m, mounts))
      .map(async (mountpoint) => {
        const st = await stat(mountpoint).catch(() => undefined);
        if (st) addTo(system.byMajMin, majMinOf(st.dev), mountpoint);
      }),
  );
  return system;
}

/** The system's mounts that live on `n` or anything below it. */
function systemMountsOn(n: LsblkNode, system: SystemDevices): string[] {
  const found = new Set<string>();
  for (const d of [n, ...descendants(n)]) {
    for (const m of mountpointsOf(d)) if (system.mountpoints.includes(m)) found.add(m);
    for (const m of (d['maj:min'] && system.byMajMin.get(d['maj:min'])) || []) found.add(m);
    for (const m of system.byPath.get(pathOf(d)) ?? []) found.add(m);
  }
  return [...found];
}

interface DeviceRefusal {
  reason: string;
  clearedByUnmount: boolean;
}

/**
 * The first rule that refuses the device, in order: the running system, read-only,
 * no medium, held by a stacked device (LVM, RAID, LUKS: unmounting does not release
 * those), mounted (`--unmount` clears this), claimed exclusively by another program.
 */
function deviceRefusal(d: { systemMounts: string[]; readOnly: boolean; sizeBytes: number; stacked: LsblkNode[]; mountpoints: string[]; busy: boolean }): DeviceRefusal | undefined {
  if (d.systemMounts.length > 0) return { reason: `holds the running system (${d.systemMounts.join(', ')})`, clearedByUnmount: false };
  if (d.readOnly) return { reason: 'is read-only (write-protect switch?)', clearedByUnmount: false };
  if (d.sizeBytes === 0) return { reason: 'has no medium (size 0)', clearedByUnmount: false };
  if (d.stacked.length > 0) {
    return { reason: `is in use by ${[...new Set(d.stacked.map((s) => s.type))].join(', ')} (${d.stacked.map((s) => s.name).join(', ')})`, clearedByUnmount: false };
  }
  if (d.mountpoints.length > 0) return { reason: `has mounted filesystems (${d.mountpoints.join(', ')})`, clearedByUnmount: true };
  if (d.busy) return { reason: 'is in use: another program has it open exclusively', clearedByUnmount: false };
  return undefined;
}

/** What `memu devices` shows and `memu flash` decides from: one lsblk node and the facts around it. */
export function describeDevice(n: LsblkNode, facts: DeviceFacts): BlockDevice {
  const below = descendants(n);
  const mountpoints = [n, ...below].flatMap(mountpointsOf);
  const systemMounts = systemMountsOn(n, facts.system);
  const partitions: BlockPartition[] = (n.children ?? [])
    .filter((c) => c.type === 'part')
    .map((c) => ({
      path: pathOf(c),
      sizeBytes: Number(c.size ?? 0),
      ...(clean(c.fstype) ? { fstype: clean(c.fstype)! } : {}),
      ...(clean(c.label) ? { label: clean(c.label)! } : {}),
      mountpoints: [c, ...descendants(c)].flatMap(mountpointsOf),
    }));
  const sizeBytes = Number(n.size ?? 0);
  const readOnly = truthy(n.ro);
  const refusal = deviceRefusal({ systemMounts, readOnly, sizeBytes, stacked: below.filter((d) => d.type !== 'part'), mountpoints, busy: facts.busy ?? false });
  const transport = n.type === 'loop' ? 'loop' : clean(n.tran);
  const model = n.type === 'loop' ? clean(facts.backingFile) : clean(n.model);
  return {
    path: pathOf(n),
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
    system: systemMounts.length > 0,
    ...(refusal ? { refusal: refusal.reason } : {}),
    refusalClearedByUnmount: refusal?.clearedByUnmount ?? false,
  };
}

/** Drive-like devices that may be flash targets: not RAM disks, compressed swap, optical drives or detached loop devices. */
export function isCandidate(n: LsblkNode): boolean {
  if (n.type !== 'disk' && n.type !== 'loop') return false;
  if (n.type === 'loop' && Number(n.size ?? 0) === 0) return false;
  return !/^(zram|ram|sr|fd)\d*/.test(n.name);
}

async function runLsblk(args: string[]): Promise<LsblkNode[]> {
  const { stdout } = await runCommand('lsblk', ['--json', '--bytes', '--output-all', ...args]);
  return (JSON.parse(stdout) as { blockdevices: LsblkNode[] }).blockdevices;
}

async function loopBackingFile(name: string): Promise<string | undefined> {
  return clean(await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => undefined));
}

/**
 * Whether another program holds the device exclusively. A read-only O_EXCL open
 * claims the device like a write would and fails with EBUSY while a mount, a
 * holder (LVM, RAID) or another flasher has it; it writes nothing.
 */
async function isClaimedExclusively(path: string): Promise<boolean> {
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_EXCL);
    await fh.close();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EBUSY';
  }
}

async function factsFor(n: LsblkNode, system: SystemDevices): Promise<DeviceFacts> {
  const [backingFile, busy] = await Promise.all([
    n.type === 'loop' ? loopBackingFile(n.kname ?? n.name) : undefined,
    Number(n.size ?? 0) > 0 ? isClaimedExclusively(pathOf(n)) : false,
  ]);
  return { system, busy, ...(backingFile ? { backingFile } : {}) };
}

export interface DeviceListOptions {
  /** Mount points whose drives are refused as the running system (default: `systemMountpoints`). */
  systemMountpoints?: readonly string[];
}

/** Whole drives (disks and attached loop devices), each with the reason flashing it is refused, if any. */
export async function listBlockDevices(opts: DeviceListOptions = {}): Promise<BlockDevice[]> {
  const [nodes, system] = await Promise.all([runLsblk([]), findSystemDevices(opts.systemMountpoints)]);
  return Promise.all(nodes.filter(isCandidate).map(async (n) => describeDevice(n, await factsFor(n, system))));
}

/** The file a loop device reads and writes, identified by inode and device number (a path can be renamed or hard-linked). */
export interface LoopBacking {
  file: string;
  inode: number;
  majMin: string;
}

/** Parses `losetup --json --list --output NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN`. */
export function parseLoopBacking(losetupJson: string): LoopBacking | undefined {
  const [row] = (JSON.parse(losetupJson) as { loopdevices?: Array<Record<string, unknown>> }).loopdevices ?? [];
  if (!row) return undefined;
  const inode = Number(row['back-ino']);
  const majMin = String(row['back-maj:min'] ?? '').trim();
  if (!Number.isSafeInteger(inode) || !/^\d+:\d+$/.test(majMin)) return undefined;
  return { file: String(row['back-file'] ?? '').trim(), inode, majMin };
}

async function loopBacking(device: string): Promise<LoopBacking | undefined> {
  const r = await runCommandOutcome('losetup', ['--json', '--list', '--output', 'NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN', device]);
  return r.code === 0 && r.stdout.trim() ? parseLoopBacking(r.stdout) : undefined;
}

/** What a target path is, as far as the refusal rules care. */
export type TargetDescription =
  | { kind: 'file'; path: string; exists: boolean }
  | { kind: 'block'; path: string; device: BlockDevice; partitionOf?: BlockDevice; loopBacking?: LoopBacking }
  | { kind: 'other'; path: string; what: string };

/**
 * Resolves a target path (following /dev/disk/by-id links) to a regular file,
 * a whole drive, a partition of one, or something else that is never written.
 */
export async function describeTarget(targetPath: string, opts: DeviceListOptions = {}): Promise<TargetDescription> {
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

  const [system, [node]] = await Promise.all([findSystemDevices(opts.systemMountpoints), runLsblk([resolved])]);
  if (!node) throw new Error(`lsblk does not know ${resolved}`);
  const device = describeDevice(node, await factsFor(node, system));
  if (node.type !== 'part') {
    const backing = node.type === 'loop' ? await loopBacking(resolved) : undefined;
    return { kind: 'block', path: resolved, device, ...(backing ? { loopBacking: backing } : {}) };
  }
  // lsblk DEV on a partition lists just it; its disk is found through PKNAME.
  const [parentNode] = node.pkname ? await runLsblk([`/dev/${node.pkname}`]) : [];
  const partitionOf = parentNode ? describeDevice(parentNode, await factsFor(parentNode, system)) : undefined;
  const backing = parentNode?.type === 'loop' ? await loopBacking(pathOf(parentNode)) : undefined;
  return { kind: 'block', path: resolved, device, ...(partitionOf ? { partitionOf } : {}), ...(backing ? { loopBacking: backing } : {}) };
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
    if (partitionOf?.system) return { reason: `${device.path} is on ${partitionOf.path}, which ${partitionOf.refusal ?? 'holds the running system'}`, hint: 'choose a partition on another drive' };
  }
  if (device.refusal && !(device.refusalClearedByUnmount && opts.unmount)) {
    return {
      reason: `${device.path} ${device.refusal}`,
      hint: device.refusalClearedByUnmount
        ? 'unmount it first, or pass --unmount to let memu flash unmount it'
        : device.system || device.readOnly || device.sizeBytes === 0
          ? 'choose another drive; `memu devices` lists them'
          : `stop whatever uses it (\`lsblk ${device.path}\` shows what is stacked on it, \`lsof ${device.path}\` who has it open) or choose another drive`,
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
