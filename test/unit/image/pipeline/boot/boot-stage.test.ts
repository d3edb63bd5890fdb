import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadProfile, validateProfile, type HardwareProfile } from '../../../../../hardware/index.ts';
import { qemuAmd64 } from '../../../../../hardware/profiles/qemu-amd64.ts';
import { computeLayout } from '../../../../../image/disk/layout.ts';
import { ExitCode, MemuError } from '../../../../../image/host/errors.ts';
import { bootBackendFor, checkFatPartitions, prepareBoot } from '../../../../../image/pipeline/boot/boot-stage.ts';
import { buildImage, defaultBuildConfig } from '../../../../../image/pipeline/pipeline.ts';
import { createHostLogger } from '../../../../../image/host/log.ts';
import { createProgress } from '../../../../../image/host/progress.ts';

/** A Raspberry Pi profile as the profile type allows it today (the pi5 profile itself is not in this release). */
function raspberryPiProfile(): HardwareProfile {
  return validateProfile(
    {
      ...qemuAmd64,
      name: 'pi-test',
      arch: 'arm64',
      vm: undefined,
      firmware: { kind: 'raspberrypi', configTxt: ['kernel=kernel8.img'], kernelCmdline: ['console=serial0,115200'], eeprom: { bootOrder: '0xf416', minimumBootloaderDate: '2025-06-09' } },
      partitions: [
        { role: 'bootconfig', label: 'memu-bootconfig', filesystem: 'vfat', sizeMiB: 32 },
        { role: 'boot-a', label: 'memu-boot-a', filesystem: 'vfat', sizeMiB: 256 },
        { role: 'boot-b', label: 'memu-boot-b', filesystem: 'vfat', sizeMiB: 256, shipsEmpty: true },
        { role: 'root-a', label: 'memu-root-a', filesystem: 'ext4', sizeMiB: 1536 },
        { role: 'root-b', label: 'memu-root-b', filesystem: 'ext4', sizeMiB: 1536, shipsEmpty: true },
        { role: 'data', label: 'memu-data', filesystem: 'ext4', sizeMiB: 512 },
      ],
    },
    'pi-test',
  );
}

describe('boot backends', () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'memu-boot-'));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('UEFI profiles boot with systemd-boot', () => {
    expect(bootBackendFor(loadProfile('qemu-amd64')).name).toBe('uefi/systemd-boot');
    expect(bootBackendFor(loadProfile('nuc')).name).toBe('uefi/systemd-boot');
  });

  it('Raspberry Pi firmware is a clear usage error: its backend is not built yet', () => {
    const pi = raspberryPiProfile();
    const err = (() => {
      try {
        bootBackendFor(pi);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MemuError);
    expect((err as MemuError).exitCode).toBe(ExitCode.badInput);
    expect((err as MemuError).message).toMatch(/profile pi-test boots with Raspberry Pi firmware, and its boot backend .* is not built yet/);
    expect((err as MemuError).hint).toMatch(/qemu-amd64, nuc/);
  });

  it('memu build of a Raspberry Pi profile fails with that error before it writes anything', async () => {
    const out = join(work, 'out');
    const config = await defaultBuildConfig(raspberryPiProfile(), { outDir: out, cacheDir: join(work, 'cache') });
    await expect(buildImage(config, createHostLogger({ json: true, level: 'silent' }), createProgress(createHostLogger({ json: true, level: 'silent' }), { tty: false }))).rejects.toThrow(/is not built yet/);
    await expect(readdir(work)).resolves.toEqual([]);
  });

  it('the UEFI backend gives the ESP tree, its fstab line, the newest kernel and each slot’s command line', async () => {
    const profile = loadProfile('qemu-amd64');
    const layout = computeLayout(profile, 'memu-os:qemu-amd64');
    const tree = join(work, 'root');
    await mkdir(join(tree, 'boot'), { recursive: true });
    await mkdir(join(tree, 'usr/lib/systemd/boot/efi'), { recursive: true });
    await writeFile(join(tree, 'usr/lib/systemd/boot/efi/systemd-bootx64.efi'), 'systemd-boot');
    for (const v of ['6.12.9', '6.12.10']) {
      await writeFile(join(tree, 'boot', `vmlinuz-${v}`), `kernel ${v}`);
      await writeFile(join(tree, 'boot', `initrd.img-${v}`), `initrd ${v}`);
    }
    const boot = await prepareBoot({ backend: bootBackendFor(profile), tree, workDir: work, profile, layout });
    expect(boot.kernelVersion).toBe('6.12.10');
    const rootA = layout.partitions.find((p) => p.role === 'root-a')!;
    const rootB = layout.partitions.find((p) => p.role === 'root-b')!;
    expect(boot.kernelCmdline.a).toMatch(new RegExp(`^root=PARTUUID=${rootA.partUuid} rw rootwait memu\\.slot=a console=tty0`));
    expect(boot.kernelCmdline.b).toMatch(new RegExp(`^root=PARTUUID=${rootB.partUuid} rw rootwait memu\\.slot=b`));
    expect(boot.fatPartitions).toEqual([{ role: 'esp', volumeLabel: 'MEMU-ESP', sourceDir: join(work, 'esp') }]);
    const esp = join(work, 'esp');
    expect(await readFile(join(esp, 'memu/a/vmlinuz'), 'utf8')).toBe('kernel 6.12.10');
    expect(await readFile(join(esp, 'EFI/BOOT/BOOTX64.EFI'), 'utf8')).toBe('systemd-boot');
    expect(await readFile(join(esp, 'loader/entries/memu-a.conf'), 'utf8')).toBe(
      ['title Memu OS (slot A)', 'version 6.12.10', 'linux /memu/a/vmlinuz', 'initrd /memu/a/initrd.img', `options ${boot.kernelCmdline.a}`, ''].join('\n'),
    );
    const fstab = await readFile(join(tree, 'etc/fstab'), 'utf8');
    expect(fstab.trim().split('\n').at(-1)).toBe(boot.fstabLines[0]);
    expect(boot.fstabLines[0]).toMatch(/ \/boot\/efi vfat /);
    expect(await readFile(join(tree, 'etc/kernel/cmdline'), 'utf8')).toBe(`${boot.kernelCmdline.a}\n`);
  });

  it('every FAT partition of the layout gets exactly one tree, except those that ship empty', () => {
    const pi = raspberryPiProfile();
    const layout = computeLayout(pi, 'seed');
    const tree = (role: 'bootconfig' | 'boot-a' | 'boot-b' | 'esp') => ({ role, volumeLabel: role.toUpperCase(), sourceDir: `/t/${role}` });
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a')], 'test')).not.toThrow();
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig')], 'test')).toThrow(/FAT partition boot-a got 0 trees, needs 1/);
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a'), tree('boot-b')], 'test')).toThrow(/boot-b ships empty but got a tree/);
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a'), tree('esp')], 'test')).toThrow(/a tree for esp, which is not a FAT partition/);
  });
});
