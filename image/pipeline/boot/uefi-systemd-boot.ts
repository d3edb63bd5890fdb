import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SYSTEMD_BOOT_FILES, systemdBootEntryName, systemdBootEntryText } from '../../../shared/contracts/boot-slots.ts';
import { partitionByRole } from '../../disk/layout.ts';
import { replaceFile } from '../staging.ts';
import type { BootBackend, BootInputs, BootOutput, Firmware } from './boot-backend.ts';
import { kernelCmdlineOf, newestKernel } from './slot-kernel.ts';

type UefiFirmware = Extract<Firmware, { kind: 'uefi' }>;

/**
 * The UEFI backend: systemd-boot on the ESP. systemd-boot reads only FAT, so each root
 * slot's kernel and initrd are copied to `/memu/<slot>/` on the ESP and a Boot Loader
 * Specification entry per slot names the root by PARTUUID. systemd-boot's boot counting
 * (`memu-b+3.conf` entries) gives the A/B try counter updates use (agent/boot-slots/).
 * The image ships slot A's entry only; root B ships empty.
 */
export const uefiSystemdBoot: BootBackend<UefiFirmware> = {
  name: 'uefi/systemd-boot',
  async prepare({ tree, workDir, profile, firmware, layout }: BootInputs<UefiFirmware>): Promise<BootOutput> {
    const kernelVersion = await newestKernel(tree);
    const kernelCmdline = { a: kernelCmdlineOf(profile, layout, 'a'), b: kernelCmdlineOf(profile, layout, 'b') };

    // kernel-install's setting, for kernels installed on the device later.
    await replaceFile(tree, 'etc/kernel/cmdline', `${kernelCmdline.a}\n`);
    await mkdir(join(tree, 'boot/efi'), { recursive: true });

    const esp = join(workDir, 'esp');
    await mkdir(join(esp, 'EFI/BOOT'), { recursive: true });
    await mkdir(join(esp, 'memu/a'), { recursive: true });
    await mkdir(join(esp, SYSTEMD_BOOT_FILES.entriesDir), { recursive: true });
    await copyFile(join(tree, firmware.systemdBootBinary), join(esp, 'EFI/BOOT', firmware.efiBootFile));
    await copyFile(join(tree, 'boot', `vmlinuz-${kernelVersion}`), join(esp, SYSTEMD_BOOT_FILES.kernel('a')));
    await copyFile(join(tree, 'boot', `initrd.img-${kernelVersion}`), join(esp, SYSTEMD_BOOT_FILES.initrd('a')));
    await replaceFile(esp, SYSTEMD_BOOT_FILES.loaderConf, [`default ${systemdBootEntryName('a')}`, 'timeout 0', 'editor no', 'console-mode keep', ''].join('\n'));
    await replaceFile(esp, `${SYSTEMD_BOOT_FILES.entriesDir}/${systemdBootEntryName('a')}`, systemdBootEntryText({ slot: 'a', kernelVersion, kernelCmdline: kernelCmdline.a }));

    const espPartition = partitionByRole(layout, 'esp');
    return {
      kernelVersion,
      kernelCmdline,
      fatPartitions: [{ role: 'esp', volumeLabel: 'MEMU-ESP', sourceDir: esp }],
      fstabLines: [`PARTUUID=${espPartition.partUuid} /boot/efi vfat umask=0077,noauto,x-systemd.automount,x-systemd.idle-timeout=60 0 2`],
    };
  },
};
