import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  describeDevice,
  isCandidate,
  majMinOf,
  parseLoopBacking,
  refusalFor,
  systemDevicesFromMounts,
  systemMountpoints,
  type DeviceFacts,
  type LsblkNode,
  type MountEntry,
} from '../../../../image/flash/block-devices.ts';

/*
 * The rules run on output captured from real tools on a Debian 12 host (util-linux
 * 2.38.1), in fixtures/: `lsblk --json --bytes --output-all DEV` for its root disk
 * (/dev/vda, mounted at / and /var/lib/docker) and for loop devices set up as the file
 * names say (a GPT partition with ext4 mounted, ext4 on the whole device mounted,
 * `losetup -r`, swap on, unused; two partitions with the first mounted), `findmnt -J -l
 * -n -o TARGET,SOURCE,MAJ:MIN` at the same moment (the host's own /mnt entries left
 * out), `losetup --json --list -O NAME,BACK-FILE,BACK-INO,BACK-MAJ:MIN` and the sysfs
 * `loop/backing_file` of the unused one. Shapes this host cannot produce (no
 * device-mapper or md in its kernel, no card reader) are made from a captured node by
 * changing only what such a device changes, and say so.
 */
const fixture = (name: string): string => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8');
const lsblk = (name: string): LsblkNode => (JSON.parse(fixture(`lsblk-${name}.json`)) as { blockdevices: LsblkNode[] }).blockdevices[0]!;
const mounts = (name = 'findmnt.json'): MountEntry[] => (JSON.parse(fixture(name)) as { filesystems: MountEntry[] }).filesystems;
const captureDir = '/var/tmp/memu-fixture-capture';
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const hostFacts = (extra: Partial<DeviceFacts> = {}): DeviceFacts => ({ system: systemDevicesFromMounts(mounts()), busy: false, ...extra });

describe('the running system is never a target', () => {
  it("refuses the host's root disk, naming the system mount point, even with --unmount", () => {
    const root = describeDevice(lsblk('root-disk'), hostFacts());
    expect(root).toMatchObject({ path: '/dev/vda', type: 'disk', system: true, refusalClearedByUnmount: false });
    expect(root.refusal).toBe('holds the running system (/)');
    expect(refusalFor({ device: root }, { imageSize: GiB, unmount: true })?.reason).toBe('/dev/vda holds the running system (/)');
  });

  it("finds it by lsblk's mount points alone (findmnt missing)", () => {
    const root = describeDevice(lsblk('root-disk'), { system: systemDevicesFromMounts([]) });
    expect(root.refusal).toBe('holds the running system (/)');
  });

  it('finds it by device number when the system path is a directory inside a mount and the source names no device lsblk knows', () => {
    // As when findmnt shows the root's source as /dev/root.
    const usr = `${captureDir}/mnt-part/usr`;
    const renamed = mounts().map((m) => (m.source === '/dev/loop0p1' ? { ...m, source: '/dev/root' } : m));
    const system = systemDevicesFromMounts(renamed, [usr]);
    expect(system.byMajMin.get('259:0')).toEqual([`${captureDir}/mnt-part`]);
    const disk = describeDevice(lsblk('loop-partition-mounted'), { system });
    expect(disk.refusal).toBe(`holds the running system (${captureDir}/mnt-part)`);
    expect(disk.refusalClearedByUnmount).toBe(false);
  });

  it('finds it by device path when the mount table has no device numbers and lsblk does not see the mount', () => {
    const withoutNumbers = mounts().map(({ target, source }) => ({ target, ...(source ? { source } : {}) }));
    const system = systemDevicesFromMounts(withoutNumbers, [`${captureDir}/mnt-whole`]);
    expect(system.byPath.get('/dev/loop1')).toEqual([`${captureDir}/mnt-whole`]);
    // lsblk reads its own mount namespace: a mount made in another one shows no mount point.
    const unseen = { ...lsblk('loop-mounted-whole'), mountpoint: null, mountpoints: [null] };
    expect(describeDevice(unseen, { system }).refusal).toBe(`holds the running system (${captureDir}/mnt-whole)`);
  });

  it('leaves drives that hold no system mount point alone', () => {
    expect(describeDevice(lsblk('loop-unused'), hostFacts())).toMatchObject({ system: false, refusalClearedByUnmount: false });
    expect(describeDevice(lsblk('loop-unused'), hostFacts()).refusal).toBeUndefined();
    expect(systemMountpoints).toEqual(['/', '/boot', '/boot/efi', '/boot/firmware', '/usr']);
  });

  it('refuses a partition on the system drive even with --allow-partition, though the partition itself holds nothing', () => {
    const system = systemDevicesFromMounts(mounts('findmnt-two-partitions.json'), [`${captureDir}/mnt-sys`]);
    const disk = describeDevice(lsblk('loop-two-partitions'), { system });
    const spare = describeDevice(lsblk('loop-two-partitions-p2'), { system });
    expect(disk.system).toBe(true);
    expect(spare).toMatchObject({ type: 'part', system: false });
    expect(spare.refusal).toBeUndefined();
    const refused = refusalFor({ device: spare, partitionOf: disk }, { imageSize: MiB, allowPartition: true, unmount: true });
    expect(refused?.reason).toBe(`/dev/loop0p2 is on /dev/loop0, which holds the running system (${captureDir}/mnt-sys)`);
  });
});

describe('drives that cannot or must not be written', () => {
  it('refuses a read-only drive (losetup -r; a write-protected card)', () => {
    const ro = describeDevice(lsblk('loop-read-only'), hostFacts());
    expect(ro).toMatchObject({ readOnly: true, refusal: 'is read-only (write-protect switch?)', refusalClearedByUnmount: false });
    expect(refusalFor({ device: ro }, { imageSize: MiB, unmount: true })?.reason).toMatch(/read-only/);
  });

  it('refuses a card reader without a card (a removable disk of size 0)', () => {
    // Made from the unused loop device: a USB card reader is a removable "disk" whose size is 0 until a card is in.
    const reader = describeDevice({ ...lsblk('loop-unused'), name: 'sdc', path: '/dev/sdc', type: 'disk', size: 0, rm: true, tran: 'usb' }, hostFacts());
    expect(reader.refusal).toBe('has no medium (size 0)');
  });

  it('refuses a drive that LVM or RAID is stacked on, even with --unmount, naming what holds it', () => {
    // Made from the captured partition: lsblk shows a device-mapper or md holder as a child
    // of the device it sits on, with a type of lvm, crypt, raid1, ...
    const node = lsblk('loop-unused');
    const lv: LsblkNode = { ...node, name: 'vg0-data', kname: 'dm-0', path: '/dev/mapper/vg0-data', type: 'lvm', 'maj:min': '253:0', mountpoint: null, mountpoints: [null] };
    const md: LsblkNode = { ...node, name: 'md0', kname: 'md0', path: '/dev/md0', type: 'raid1', 'maj:min': '9:0', mountpoint: null, mountpoints: [null] };
    const luks: LsblkNode = { ...node, name: 'luks-data', kname: 'dm-1', path: '/dev/mapper/luks-data', type: 'crypt', 'maj:min': '253:1', mountpoint: null, mountpoints: [null] };
    for (const [holder, type] of [
      [lv, 'lvm'],
      [md, 'raid1'],
      [luks, 'crypt'],
    ] as const) {
      const held = describeDevice({ ...node, children: [holder] }, hostFacts());
      expect(held.refusal).toBe(`is in use by ${type} (${holder.name})`);
      expect(held.refusalClearedByUnmount).toBe(false);
      expect(refusalFor({ device: held }, { imageSize: MiB, unmount: true })?.reason).toContain(`in use by ${type}`);
    }
    // A mounted logical volume is still LVM's: unmounting it would not release the drive.
    const mountedLv = describeDevice({ ...node, children: [{ ...lv, mountpoint: '/srv', mountpoints: ['/srv'] }] }, hostFacts());
    expect(mountedLv).toMatchObject({ refusal: 'is in use by lvm (vg0-data)', refusalClearedByUnmount: false });
  });

  it('refuses a drive another program holds open exclusively', () => {
    const busy = describeDevice(lsblk('loop-unused'), hostFacts({ busy: true }));
    expect(busy.refusal).toBe('is in use: another program has it open exclusively');
    expect(refusalFor({ device: busy }, { imageSize: MiB, unmount: true })?.hint).toMatch(/lsof \/dev\/loop4/);
  });

  it('refuses a drive with a mounted partition or filesystem, unless --unmount', () => {
    for (const [name, where] of [
      ['loop-partition-mounted', `${captureDir}/mnt-part`],
      ['loop-mounted-whole', `${captureDir}/mnt-whole`],
      ['loop-swap', '[SWAP]'],
    ] as const) {
      const mounted = describeDevice(lsblk(name), hostFacts({ busy: true }));
      expect(mounted, name).toMatchObject({ refusal: `has mounted filesystems (${where})`, refusalClearedByUnmount: true, mountpoints: [where] });
      const refused = refusalFor({ device: mounted }, { imageSize: MiB });
      expect(refused?.hint).toMatch(/--unmount/);
      expect(refusalFor({ device: mounted }, { imageSize: MiB, unmount: true })).toBeUndefined();
    }
    const disk = describeDevice(lsblk('loop-partition-mounted'), hostFacts());
    expect(disk.partitions).toEqual([{ path: '/dev/loop0p1', sizeBytes: 32 * MiB, mountpoints: [`${captureDir}/mnt-part`] }]);
  });

  it('refuses a partition unless --allow-partition, then applies the drive rules to it', () => {
    const parent = describeDevice(lsblk('loop-partition-mounted'), hostFacts());
    const part = describeDevice(lsblk('loop-partition-mounted-p1'), hostFacts());
    expect(part).toMatchObject({ type: 'part', path: '/dev/loop0p1' });
    expect(refusalFor({ device: part, partitionOf: parent }, { imageSize: MiB, unmount: true })).toEqual({
      reason: '/dev/loop0p1 is a partition, not a whole drive',
      hint: 'flash the whole drive (/dev/loop0), or pass --allow-partition if you really mean this partition',
    });
    expect(refusalFor({ device: part, partitionOf: parent }, { imageSize: MiB, allowPartition: true })?.reason).toMatch(/mounted filesystems/);
    expect(refusalFor({ device: part, partitionOf: parent }, { imageSize: MiB, allowPartition: true, unmount: true })).toBeUndefined();
  });

  it('refuses a drive smaller than the image, naming both sizes', () => {
    const unused = describeDevice(lsblk('loop-unused'), hostFacts());
    expect(refusalFor({ device: unused }, { imageSize: 32 * MiB })).toBeUndefined();
    expect(refusalFor({ device: unused }, { imageSize: 32 * MiB + 1 })?.reason).toBe(`/dev/loop4 is too small: ${32 * MiB} bytes, the image needs ${32 * MiB + 1}`);
  });

  it('shows a loop device with its backing file (sysfs) as model and "loop" as transport', () => {
    const backing = fixture('sysfs-loop-unused-backing_file');
    expect(describeDevice(lsblk('loop-unused'), hostFacts({ backingFile: backing }))).toMatchObject({ model: `${captureDir}/plain.disk`, transport: 'loop', removable: false, readOnly: false });
  });
});

describe('what counts as a drive, and which file a loop device reads', () => {
  it('lists disks and attached loop devices, not RAM disks, zram, optical drives or detached loops', () => {
    const node = lsblk('loop-unused');
    expect(isCandidate(node)).toBe(true);
    expect(isCandidate(lsblk('root-disk'))).toBe(true);
    expect(isCandidate({ ...node, size: 0 })).toBe(false);
    expect(isCandidate({ ...node, name: 'zram0', type: 'disk' })).toBe(false);
    expect(isCandidate({ ...node, name: 'sr0', type: 'rom' })).toBe(false);
    expect(isCandidate(lsblk('loop-partition-mounted-p1'))).toBe(false);
  });

  it("reads losetup's backing inode and device number, which name the file whatever its path", () => {
    expect(parseLoopBacking(fixture('losetup-loop-unused.json'))).toEqual({ file: `${captureDir}/plain.disk`, inode: 15417362, majMin: '254:0' });
    // stat() of that file on the same host: st_dev 65024, st_ino 15417362.
    expect(majMinOf(65024)).toBe('254:0');
    expect(parseLoopBacking('{"loopdevices": []}')).toBeUndefined();
  });
});
