import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, cp, mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { parseAutobootTxt, renderAutobootTxt, setBootPartition, setSectionSetting } from '../../../shared/contracts/autoboot-txt.ts';
import { RASPBERRY_PI_BOOT_FILES, RASPBERRY_PI_MOUNT_POINTS } from '../../../shared/contracts/boot-slots.ts';
import { partitionByRole } from '../../disk/layout.ts';
import { ExitCode, MemuError } from '../../host/errors.ts';
import { formatBytes } from '../../host/progress.ts';
import { replaceFile } from '../staging.ts';
import type { BootBackend, BootInputs, BootOutput, Firmware } from './boot-backend.ts';
import { kernelCmdlineOf, newestKernel } from './slot-kernel.ts';

type RaspberryPiFirmware = Extract<Firmware, { kind: 'raspberrypi' }>;

/** config.txt settings this backend writes; a profile line setting one would fight it. */
const BACKEND_SETTINGS = ['arm_64bit', 'kernel', 'initramfs', 'auto_initramfs', 'ramfsfile', 'cmdline', 'os_prefix', 'device_tree', 'enable_uart'];

/**
 * The Pi 5 device trees, by the name the firmware loads and the names kernels ship them
 * under. Mainline calls the D0 stepping's tree `bcm2712-d-rpi-5-b.dtb`; Raspberry Pi's
 * firmware releases name it `bcm2712d0-rpi-5-b.dtb`. The D0 tree goes under both names,
 * so whichever the firmware asks for on a D0 board, it gets that board's tree.
 */
const BOARD_DEVICE_TREES = [
  { board: 'boards with the C0 stepping', firmwareName: 'bcm2712-rpi-5-b.dtb', kernelNames: ['bcm2712-rpi-5-b.dtb'] },
  { board: 'boards with the D0 stepping', firmwareName: 'bcm2712d0-rpi-5-b.dtb', kernelNames: ['bcm2712d0-rpi-5-b.dtb', 'bcm2712-d-rpi-5-b.dtb'] },
] as const;

/** A Linux arm64 `Image` carries this at byte 0x38 (Documentation/arch/arm64/booting.rst). */
const ARM64_IMAGE_MAGIC = Buffer.from('ARM\x64', 'latin1');
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/**
 * The Raspberry Pi 5 backend: the firmware in the board's EEPROM reads `autoboot.txt` on
 * the first FAT partition (bootconfig), which names the boot partition to start, and
 * `tryboot_a_b=1` makes a trial boot read that partition's own config.txt (see
 * shared/contracts/boot-slots.ts for how the agent switches slots). The image ships boot
 * A filled and boot B empty, like the root slots.
 *
 * The kernel is Debian's, not Raspberry Pi's: `config.txt` names it and its initrd,
 * `cmdline.txt` names the slot's root by PARTUUID, and the device trees come from the
 * kernel package (mainline names).
 *
 * Debian's arm64 `vmlinuz` is a plain, uncompressed `Image` (about 50 MB for 7.3 from
 * trixie-backports: "ARMd" at 0x38, no gzip or EFI zboot wrapper), over the NVMe limit.
 * The Pi firmware starts gzip archives of an Image too, recognised by their first bytes
 * (raspberrypi/documentation config_txt/boot.adoc, `arm_64bit`; Raspberry Pi's own kernel
 * build installs `Image.gz` as the Pi 5's `kernel_2712.img`, linux_kernel/building.adoc),
 * so the backend ships the kernel gzip-compressed (about 18 MB).
 */
export const raspberryPiFirmware: BootBackend<RaspberryPiFirmware> = {
  name: 'raspberrypi/tryboot',
  async prepare({ tree, workDir, profile, firmware, layout }: BootInputs<RaspberryPiFirmware>): Promise<BootOutput> {
    checkProfileConfigTxt(profile.name, firmware.configTxt);
    const kernelVersion = await newestKernel(tree);
    const kernelCmdline = { a: kernelCmdlineOf(profile, layout, 'a'), b: kernelCmdlineOf(profile, layout, 'b') };
    const bootconfigPartition = partitionByRole(layout, 'bootconfig');
    const bootA = partitionByRole(layout, 'boot-a');

    const bootconfig = join(workDir, 'bootconfig');
    await mkdir(bootconfig, { recursive: true });
    await replaceFile(bootconfig, RASPBERRY_PI_BOOT_FILES.autobootTxt, shippedAutobootTxt(bootA.number));

    const bootDir = join(workDir, 'boot-a');
    await mkdir(bootDir, { recursive: true });
    const kernelSource = `/boot/vmlinuz-${kernelVersion}`;
    const initrdSource = `/boot/initrd.img-${kernelVersion}`;
    await bootableKernel(join(tree, kernelSource), join(bootDir, RASPBERRY_PI_BOOT_FILES.kernel), kernelSource);
    await copyInitrd(join(tree, initrdSource), join(bootDir, RASPBERRY_PI_BOOT_FILES.initrd), initrdSource, kernelVersion);
    await copyDeviceTrees(tree, kernelVersion, bootDir);
    await replaceFile(bootDir, RASPBERRY_PI_BOOT_FILES.configTxt, configTxt(firmware.configTxt));
    await replaceFile(bootDir, RASPBERRY_PI_BOOT_FILES.cmdlineTxt, `${kernelCmdline.a}\n`);
    await checkBootFileLimit(bootDir, 'boot-a', firmware.bootFileLimitBytes);

    await mkdir(join(tree, RASPBERRY_PI_MOUNT_POINTS.bootconfig.slice(1)), { recursive: true });
    await mkdir(join(tree, RASPBERRY_PI_MOUNT_POINTS.slotBoot.slice(1)), { recursive: true });
    // Mounted on first use and unmounted when idle, as the ESP is on UEFI targets: a FAT
    // that is rarely mounted is rarely caught dirty by a power cut.
    const fatOptions = 'vfat umask=0077,noauto,x-systemd.automount,x-systemd.idle-timeout=60 0 2';
    return {
      kernelVersion,
      kernelCmdline,
      fatPartitions: [
        { role: 'bootconfig', volumeLabel: 'MEMU-CONFIG', sourceDir: bootconfig },
        { role: 'boot-a', volumeLabel: 'MEMU-BOOT-A', sourceDir: bootDir },
      ],
      fstabLines: [
        `PARTUUID=${bootconfigPartition.partUuid} ${RASPBERRY_PI_MOUNT_POINTS.bootconfig} ${fatOptions}`,
        `PARTUUID=${bootA.partUuid} ${RASPBERRY_PI_MOUNT_POINTS.slotBoot} ${fatOptions}`,
      ],
    };
  },
};

/**
 * Boot A on every boot, nothing armed: `[tryboot]` is absent, so even a stray tryboot
 * reboot starts A. Written with the same functions the agent rewrites the file with.
 */
function shippedAutobootTxt(bootAPartition: number): string {
  const all = setSectionSetting(parseAutobootTxt('[all]\n'), 'all', 'tryboot_a_b', '1');
  return renderAutobootTxt(setBootPartition(all, 'all', bootAPartition));
}

/**
 * The backend's settings first, under `[all]`, then the profile's lines. `os_check` keeps
 * its default (on): the firmware then refuses a boot partition without a device tree for
 * the board instead of starting a kernel that would hang; the mainline trees shipped here are for the BCM2712.
 */
function configTxt(profileLines: readonly string[]): string {
  return [
    '# Memu OS: the boot partition of one slot, written by memu build (an update writes the other slot the same way).',
    '[all]',
    'arm_64bit=1',
    `kernel=${RASPBERRY_PI_BOOT_FILES.kernel}`,
    `initramfs ${RASPBERRY_PI_BOOT_FILES.initrd} followkernel`,
    // The serial console on the debug connector (ttyAMA10 in the kernel command line).
    'enable_uart=1',
    ...profileLines,
    '',
  ].join('\n');
}

function checkProfileConfigTxt(profileName: string, lines: readonly string[]): void {
  for (const line of lines) {
    const key = /^\s*([A-Za-z0-9_]+)(?:\s*=|\s)/.exec(line)?.[1];
    if (key && BACKEND_SETTINGS.includes(key)) {
      throw new MemuError(
        `profile ${profileName}: firmware.configTxt line "${line}" sets ${key}, which the Raspberry Pi boot backend writes itself (${BACKEND_SETTINGS.join(', ')})`,
        ExitCode.badInput,
        'remove the line from the profile; the backend names the kernel, initrd and command line of each slot',
      );
    }
  }
}

/** Ships an arm64 kernel as the firmware can start it: a gzip archive of the Image. */
async function bootableKernel(source: string, target: string, shownAs: string): Promise<void> {
  const head = Buffer.alloc(64);
  const file = await open(source);
  try {
    await file.read(head, 0, head.length, 0);
  } finally {
    await file.close();
  }
  if (head.subarray(0, 2).equals(GZIP_MAGIC)) {
    await copyFile(source, target);
  } else if (head.subarray(0x38, 0x3c).equals(ARM64_IMAGE_MAGIC)) {
    // zlib's default level: 2 s for Debian's 50 MB Image, 18 MB out; level 9 saves 0.3 % in three times as long.
    await pipeline(createReadStream(source), createGzip(), createWriteStream(target));
  } else if (head.subarray(0, 2).toString('latin1') === 'MZ' && head.subarray(4, 8).toString('latin1') === 'zimg') {
    throw new MemuError(
      `${shownAs} is an EFI zboot image, which only UEFI firmware can start; the Raspberry Pi firmware starts an arm64 Image or a gzip archive of one`,
      ExitCode.badInput,
      'install a kernel package whose vmlinuz is a plain or gzip-compressed Image (Debian linux-image-arm64)',
    );
  } else {
    throw new MemuError(`${shownAs} is neither an arm64 kernel Image nor a gzip archive of one`, ExitCode.badInput, 'install an arm64 kernel package (Debian linux-image-arm64)');
  }
}

async function copyInitrd(source: string, target: string, shownAs: string, kernelVersion: string): Promise<void> {
  const exists = await stat(source).then((s) => s.isFile(), () => false);
  if (!exists) {
    throw new MemuError(
      `the root filesystem has kernel ${kernelVersion} but no ${shownAs}`,
      ExitCode.badInput,
      'installing the kernel generates its initrd through initramfs-tools (in the base package set); the rootfs stage\'s log says why it did not',
    );
  }
  await copyFile(source, target);
}

/** Where kernel packages keep their device trees: Debian 6.x in /usr/lib/linux-image-<v>/, 7.x in /usr/lib/modules/<v>/dtb/ (the former then links to it). */
function deviceTreeDirs(kernelVersion: string): string[] {
  return [`usr/lib/linux-image-${kernelVersion}/broadcom`, `usr/lib/modules/${kernelVersion}/dtb/broadcom`];
}

/**
 * Every BCM2712 device tree of the kernel (Pi 5, CM5), the D0 board's also under the
 * firmware's name, and the kernel's `overlays/` if it has one (Debian's has none).
 */
async function copyDeviceTrees(tree: string, kernelVersion: string, bootDir: string): Promise<void> {
  let dir: string | undefined;
  for (const candidate of deviceTreeDirs(kernelVersion)) {
    if (await stat(join(tree, candidate)).then((s) => s.isDirectory(), () => false)) {
      dir = candidate;
      break;
    }
  }
  const found = dir ? (await readdir(join(tree, dir))).filter((n) => n.startsWith('bcm2712') && n.endsWith('.dtb')).sort() : [];
  const missing = BOARD_DEVICE_TREES.filter((b) => !b.kernelNames.some((n) => found.includes(n)));
  if (!dir || missing.length > 0) {
    throw new MemuError(
      `kernel ${kernelVersion} has no Raspberry Pi 5 device tree for ${missing.map((b) => `${b.board} (${b.kernelNames.join(' or ')})`).join(' and ')} in /${deviceTreeDirs(kernelVersion).join(' or /')}`,
      ExitCode.badInput,
      'install a kernel with device trees for both Pi 5 steppings: linux-image-arm64 from trixie-backports (the pi5 profile adds that archive)',
    );
  }
  for (const name of found) await copyFile(join(tree, dir, name), join(bootDir, name));
  for (const board of BOARD_DEVICE_TREES) {
    const source = board.kernelNames.find((n) => found.includes(n))!;
    if (source !== board.firmwareName) await copyFile(join(tree, dir, source), join(bootDir, board.firmwareName));
  }
  const overlays = join(tree, dir, 'overlays');
  if (await stat(overlays).then((s) => s.isDirectory(), () => false)) {
    await cp(overlays, join(bootDir, 'overlays'), { recursive: true, dereference: true });
  }
}

/**
 * Every file of a boot partition tree below the profile's limit (Pi 5 bootloaders older than
 * 2025-06-09 fail every read of 32 MiB or more from NVMe: rpi-eeprom
 * firmware-2712/release-notes.md, "NVMe: Fix loading of files > 32MB"), else an error naming
 * the first file too big.
 */
async function checkBootFileLimit(dir: string, role: string, limitBytes: number, rel = ''): Promise<void> {
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const relPath = rel ? `${rel}/${name}` : name;
    const s = await stat(join(dir, relPath));
    if (s.isDirectory()) {
      await checkBootFileLimit(dir, role, limitBytes, relPath);
    } else if (s.size >= limitBytes) {
      throw new MemuError(
        `${role}/${relPath} would be ${s.size} bytes (${formatBytes(s.size)}); a Raspberry Pi 5 bootloader older than 2025-06-09 cannot load a file of ${limitBytes} bytes (${formatBytes(limitBytes)}) or more from NVMe, and a board boots once before its bootloader can be updated`,
        ExitCode.badInput,
        relPath === RASPBERRY_PI_BOOT_FILES.initrd
          ? "make the initrd smaller: initramfs-tools packs the modules of every arm64 board (MODULES=most); MODULES=list with the Pi 5's modules in /etc/initramfs-tools/modules packs only those (the initrd must then be generated after the profile's overlay is laid on)"
          : 'install a smaller kernel (the backend already ships it gzip-compressed)',
      );
    }
  }
}
