import { mkdir, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RASPBERRY_PI_BOOT_FILES, SLOT_KERNEL_PARAMETER, SYSTEMD_BOOT_FILES, type BootSlot } from '../../shared/contracts/boot-slots.ts';
import type { DiskLayout } from '../../shared/contracts/disk-layout.ts';
import { openFatVolume } from '../../shared/fat/fat-volume.ts';
import { fsyncDirectory, fsyncFile, removeStaleTemporaryFiles, temporaryNameFor } from '../../shared/files/durable-files.ts';
import { runCommandOutcome } from '../../shared/process/run-command.ts';
import { layoutPartition } from '../storage/index.ts';

/** The Pi firmware reads cmdline.txt as one line; anything this long is not one. */
const CMDLINE_MAX_BYTES = 64 * 1024;

/** What a slot boots with, once its boot files are where the loader reads them. */
export interface SlotBoot {
  kernelVersion: string;
  kernelCmdline: string;
}

/**
 * The idle slot's side of a switch that RAUC does not do itself: its kernel and initrd
 * where the loader reads them, and the command line it boots with. Called after RAUC
 * wrote the slot and before the trial is armed.
 */
export interface SlotBootFiles {
  install(slot: BootSlot): Promise<SlotBoot>;
}

export class SlotBootFilesError extends Error {
  override name = 'SlotBootFilesError';
}

/** The device node of a partition, by its GPT label (as /etc/rauc/system.conf names the slots). */
export type PartitionDevice = (label: string) => string;
export const byPartitionLabel: PartitionDevice = (label) => `/dev/disk/by-partlabel/${label}`;

/**
 * Reads a slot's root filesystem with debugfs (e2fsprogs, in every image), read-only and
 * without mounting it: RAUC has just written and closed the slot, and nothing else may
 * have it mounted. debugfs exits 0 whatever happens, so every read is checked: a listing
 * must name the file, a dump must have the listed size, and anything on stderr past the
 * version banner is a failure.
 */
function slotRoot(device: string) {
  const debugfs = async (request: string) => {
    const r = await runCommandOutcome('debugfs', ['-R', request, device]);
    const problems = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^debugfs \d/.test(l));
    if (r.code !== 0 || problems.length > 0) throw new SlotBootFilesError(`debugfs -R '${request}' ${device}: ${problems.join('; ') || r.startError || `exit ${r.code}`}`);
    return r.stdout;
  };
  /** Regular files of a directory with their sizes (`ls -p`: /inode/mode/uid/gid/name/size/). */
  const files = async (dir: string) => {
    const out = new Map<string, number>();
    for (const line of (await debugfs(`ls -p ${dir}`)).split('\n')) {
      const [, , mode, , , name, size] = line.split('/');
      if (mode?.startsWith('10') && name) out.set(name, Number(size));
    }
    return out;
  };
  return {
    files,
    cat: (path: string) => debugfs(`cat ${path}`),
    /** Copies a file out whole, checked against the size the listing gave. */
    async dump(path: string, size: number, to: string) {
      await debugfs(`dump ${path} ${to}`);
      const got = await stat(to).then((s) => s.size, () => undefined);
      if (got !== size) throw new SlotBootFilesError(`copying ${path} out of ${device} gave ${got ?? 'no file'} instead of ${size} bytes`);
    },
  };
}

/** Debian's kernel versions in order (6.12.9 before 6.12.10), without Intl collation. */
function compareKernelVersions(a: string, b: string): number {
  const parts = (v: string) => v.split(/(\d+)/).filter(Boolean);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const [x = '', y = ''] = [pa[i], pb[i]];
    const diff = /^\d+$/.test(x) && /^\d+$/.test(y) ? Number(x) - Number(y) : x < y ? -1 : x > y ? 1 : 0;
    if (diff !== 0) return diff;
  }
  return 0;
}

/** The newest kernel in a slot's /boot that has its initrd beside it, as the image build picks it. */
async function newestKernel(root: ReturnType<typeof slotRoot>, slot: BootSlot) {
  const boot = await root.files('/boot');
  const versions = [...boot.keys()]
    .filter((n) => n.startsWith('vmlinuz-') && boot.has(`initrd.img-${n.slice('vmlinuz-'.length)}`))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort(compareKernelVersions);
  const version = versions.at(-1);
  if (!version) throw new SlotBootFilesError(`slot ${slot} has no kernel with an initrd in /boot (vmlinuz-<version> and initrd.img-<version>); was the slot written by a Memu release?`);
  return { version, kernelBytes: boot.get(`vmlinuz-${version}`)!, initrdBytes: boot.get(`initrd.img-${version}`)! };
}

/**
 * A release's root image is built as slot A's (its /etc/kernel/cmdline names root A), and
 * the same bytes go into either slot: the command line is made the slot's own here, by
 * pointing `root=` at the slot's partition and `memu.slot=` at the slot. The rest (console,
 * quiet, the release's own kernel options) is kept as the release wrote it.
 */
export function commandLineForSlot(cmdline: string, slot: BootSlot, layout: DiskLayout): string {
  const words = cmdline.trim().split(/\s+/).filter(Boolean);
  if (!words.some((w) => w.startsWith('root='))) throw new SlotBootFilesError(`the release's kernel command line names no root= ("${cmdline.trim()}")`);
  const root = `root=PARTUUID=${layoutPartition(layout, slot === 'a' ? 'root-a' : 'root-b').partUuid}`;
  const own = words.filter((w) => !w.startsWith(`${SLOT_KERNEL_PARAMETER}=`)).map((w) => (w.startsWith('root=') ? root : w));
  own.splice(own.indexOf(root) + 1, 0, `${SLOT_KERNEL_PARAMETER}=${slot}`);
  return own.join(' ');
}

/**
 * systemd-boot (x86-64): the loader reads only the ESP, so the slot's kernel and initrd are
 * copied there (`/memu/<slot>/vmlinuz`, `initrd.img`), each under a temporary name, fsynced
 * and renamed, then the directory fsynced. The slot's entry does not exist or is not first
 * in boot order until the trial is armed, so a power cut here boots the running slot.
 */
export function espSlotBootFiles(opts: { layout: DiskLayout; espDir: string; partitionDevice?: PartitionDevice }): SlotBootFiles {
  const device = opts.partitionDevice ?? byPartitionLabel;
  return {
    async install(slot) {
      const root = slotRoot(device(layoutPartition(opts.layout, slot === 'a' ? 'root-a' : 'root-b').label));
      const kernel = await newestKernel(root, slot);
      const cmdline = commandLineForSlot(await root.cat('/etc/kernel/cmdline'), slot, opts.layout);
      const targets = [
        { from: `/boot/vmlinuz-${kernel.version}`, bytes: kernel.kernelBytes, to: join(opts.espDir, SYSTEMD_BOOT_FILES.kernel(slot)) },
        { from: `/boot/initrd.img-${kernel.version}`, bytes: kernel.initrdBytes, to: join(opts.espDir, SYSTEMD_BOOT_FILES.initrd(slot)) },
      ];
      const dir = dirname(targets[0]!.to);
      await mkdir(dir, { recursive: true });
      await removeStaleTemporaryFiles(dir);
      for (const t of targets) {
        const tmp = temporaryNameFor(t.to);
        await root.dump(t.from, t.bytes, tmp);
        await fsyncFile(tmp);
        await rename(tmp, t.to);
      }
      await fsyncDirectory(dir);
      return { kernelVersion: kernel.version, kernelCmdline: cmdline };
    },
  };
}

/**
 * tryboot (Pi 5): RAUC wrote the slot's boot partition itself (a child slot of its root,
 * the release's boot.vfat, made as slot A's), so the kernel is already there; its
 * cmdline.txt is made the slot's own as on x86-64 (root= and memu.slot=), read and written
 * with mtools (in every image) without mounting the partition. A power cut while writing
 * it leaves a slot that is not armed: the running slot boots, and RAUC writes it again.
 */
export function bootPartitionSlotBootFiles(opts: { layout: DiskLayout; partitionDevice?: PartitionDevice }): SlotBootFiles {
  const device = opts.partitionDevice ?? byPartitionLabel;
  return {
    async install(slot) {
      const root = slotRoot(device(layoutPartition(opts.layout, slot === 'a' ? 'root-a' : 'root-b').label));
      const kernel = await newestKernel(root, slot);
      const bootDevice = device(layoutPartition(opts.layout, slot === 'a' ? 'boot-a' : 'boot-b').label);
      const name = RASPBERRY_PI_BOOT_FILES.cmdlineTxt;
      const problem = (what: string, err: unknown) => new SlotBootFilesError(`cannot ${what} ${name} on slot ${slot}'s boot partition ${bootDevice}: ${(err as Error).message}`);
      // The FAT layer the preseed and QA use: mtools without mounting, and a replace that a power cut cannot leave half-written.
      const volume = await openFatVolume(bootDevice).catch((err: unknown) => {
        throw problem('open', err);
      });
      const text = await volume.readFile(name, CMDLINE_MAX_BYTES).catch((err: unknown) => {
        throw problem('read', err);
      });
      if (text === 'too-large') throw new SlotBootFilesError(`${name} on slot ${slot}'s boot partition ${bootDevice} is over ${CMDLINE_MAX_BYTES} bytes: not a kernel command line`);
      const written = text.toString('utf8');
      const cmdline = commandLineForSlot(written, slot, opts.layout);
      if (cmdline !== written.trim()) {
        await volume.writeFileAtomic(name, 'cmdline.tmp', Buffer.from(`${cmdline}\n`)).catch((err: unknown) => {
          throw problem('write', err);
        });
      }
      return { kernelVersion: kernel.version, kernelCmdline: cmdline };
    },
  };
}
