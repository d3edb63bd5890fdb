import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initramfsKeyDigest, locateModules, modulesFileEntries, type InitramfsKey } from '../../../../../image/pipeline/boot/initramfs.ts';
import { REPO_ROOT } from '../../../../helpers/memu-build.ts';

const KERNEL = '7.3.4+deb13-arm64';
const key: InitramfsKey = {
  kind: 'memu-initramfs/1',
  rootfsKey: 'a'.repeat(24),
  kernelVersion: KERNEL,
  inputs: [{ path: 'etc/initramfs-tools/modules', sha256: 'b'.repeat(64) }],
  sourceDateEpoch: 1767225600,
  requiredModules: ['rp1_pci', 'ext4'],
};

describe('the initrd made after the overlays', () => {
  it("reads the Pi 5 overlay's modules file as the module names initramfs-tools loads, in order", async () => {
    const text = await readFile(join(REPO_ROOT, 'overlays/pi5/etc/initramfs-tools/modules'), 'utf8');
    expect(modulesFileEntries(text)).toEqual(['rp1_pci', 'irq-bcm2712-mip', 'pcie-brcmstb', 'nvme', 'sdhci-brcmstb']);
    expect(modulesFileEntries('# only a comment\n\n  nvme  io_queue_depth=64 # options\n')).toEqual(['nvme']);
  });

  it('finds each module in the initrd, compressed or not, or built into the kernel, with - and _ as one; leaves out the missing', () => {
    const initrd = [
      'usr/lib/modules/7.3.4+deb13-arm64/kernel/drivers/misc/rp1/rp1_pci.ko.xz',
      'usr/lib/modules/7.3.4+deb13-arm64/kernel/drivers/irqchip/irq-bcm2712-mip.ko',
      'usr/lib/modules/7.3.4+deb13-arm64/kernel/drivers/nvme/host/nvme.ko.zst',
      'usr/lib/modules/7.3.4+deb13-arm64/kernel/fs/ext4/ext4.ko.xz',
      'usr/bin/busybox',
    ];
    const builtin = ['kernel/drivers/pci/controller/pcie-brcmstb.ko', ''];
    expect(locateModules(['rp1-pci', 'irq_bcm2712_mip', 'pcie-brcmstb', 'nvme', 'sdhci-brcmstb', 'ext4'], initrd, builtin)).toEqual({
      'rp1-pci': initrd[0],
      irq_bcm2712_mip: initrd[1],
      'pcie-brcmstb': 'built-in',
      nvme: initrd[2],
      ext4: initrd[3],
    });
  });

  it('is cached under a key of plain data that changes with the overlay, the kernel, the root filesystem and the epoch, and only then', () => {
    expect(initramfsKeyDigest({ ...key })).toBe(initramfsKeyDigest(key));
    expect(initramfsKeyDigest({ ...key, inputs: [{ path: 'etc/initramfs-tools/modules', sha256: 'c'.repeat(64) }] })).not.toBe(initramfsKeyDigest(key));
    expect(initramfsKeyDigest({ ...key, kernelVersion: '7.3.5+deb13-arm64' })).not.toBe(initramfsKeyDigest(key));
    expect(initramfsKeyDigest({ ...key, rootfsKey: 'd'.repeat(24) })).not.toBe(initramfsKeyDigest(key));
    expect(initramfsKeyDigest({ ...key, sourceDateEpoch: 1 })).not.toBe(initramfsKeyDigest(key));
  });
});
