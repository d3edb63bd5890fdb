import { describe, expect, it } from 'vitest';
import { loadProfile, platformOf } from '../../../../hardware/index.ts';

/** BOOT_ORDER's boot modes in the order the bootloader tries them: nibbles from the right (Raspberry Pi's bootloader configuration documentation). */
function bootModes(bootOrder: string): string[] {
  const modes: Record<string, string> = { '1': 'SD card', '2': 'network', '4': 'USB mass storage', '6': 'NVMe', e: 'stop', f: 'restart' };
  return [...bootOrder.slice(2)].reverse().map((nibble) => modes[nibble] ?? `unknown ${nibble}`);
}

describe('the pi5 profile', () => {
  const pi5 = loadProfile('pi5');

  it('validates: an arm64 product booting through the Raspberry Pi firmware, without a VM', () => {
    expect(pi5).toMatchObject({ name: 'pi5', arch: 'arm64', kind: 'product', firmware: { kind: 'raspberrypi' }, features: { npu: 'hailo-optional', wifi: true } });
    expect(platformOf(pi5)).toBe('linux/arm64');
    expect(pi5.vm).toBeUndefined();
  });

  it('lists the partitions in the order the firmware and the agent expect, boot B and root B shipping empty', () => {
    expect(pi5.partitions.map((p) => [p.role, p.filesystem, p.shipsEmpty])).toEqual([
      ['bootconfig', 'vfat', false],
      ['boot-a', 'vfat', false],
      ['boot-b', 'vfat', true],
      ['root-a', 'ext4', false],
      ['root-b', 'ext4', true],
      ['data', 'ext4', false],
    ]);
    const size = (role: string) => pi5.partitions.find((p) => p.role === role)!.sizeMiB;
    // A slot's boot partition holds the kernel, initrd and device trees, each up to 32 MiB.
    expect(size('boot-a')).toBeGreaterThanOrEqual(128);
    expect(size('boot-b')).toBe(size('boot-a'));
    expect(size('root-b')).toBe(size('root-a'));
  });

  it('boots NVMe first, then SD card, then USB, and asks for a bootloader that loads large files from NVMe', () => {
    expect(bootModes(pi5.firmware.kind === 'raspberrypi' ? pi5.firmware.eeprom.bootOrder : '')).toEqual(['NVMe', 'SD card', 'USB mass storage', 'restart']);
    expect(pi5.firmware.kind === 'raspberrypi' && pi5.firmware.eeprom.minimumBootloaderDate).toBe('2025-06-09');
  });

  it("installs Debian's arm64 kernel pinned from trixie-backports, the Wi-Fi firmware, and a serial console", () => {
    expect(pi5.rootfs).toMatchObject({ suite: 'trixie', components: ['main', 'non-free-firmware'] });
    expect(pi5.rootfs.packages).toContain('firmware-brcm80211');
    expect(pi5.rootfs.kernel).toMatchObject({ package: 'linux-image-7.3.4+deb13-arm64', suite: 'trixie-backports' });
    expect(pi5.rootfs.extraAptSources.map((s) => [s.uri, s.suites])).toEqual([['http://deb.debian.org/debian', ['trixie-backports']]]);
    expect(pi5.firmware.kernelCmdline).toContain('console=ttyAMA10,115200');
  });

  it('reboots 20 times in factory QA (Pi 5 NVMe drives that vanish on a warm reboot)', () => {
    expect(pi5.qa.rebootCycles).toBeGreaterThanOrEqual(20);
  });
});
