import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../../hardware/index.ts';
import { computeLayout } from '../../../../../image/disk/layout.ts';
import { bootBackendFor, checkFatPartitions, prepareBoot } from '../../../../../image/pipeline/boot/boot-stage.ts';

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

  it('Raspberry Pi profiles boot with the Pi firmware through tryboot', () => {
    expect(bootBackendFor(loadProfile('pi5')).name).toBe('raspberrypi/tryboot');
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
    const pi = loadProfile('pi5');
    const layout = computeLayout(pi, 'seed');
    const tree = (role: 'bootconfig' | 'boot-a' | 'boot-b' | 'esp') => ({ role, volumeLabel: role.toUpperCase(), sourceDir: `/t/${role}` });
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a')], 'test')).not.toThrow();
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig')], 'test')).toThrow(/FAT partition boot-a got 0 trees, needs 1/);
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a'), tree('boot-b')], 'test')).toThrow(/boot-b ships empty but got a tree/);
    expect(() => checkFatPartitions(pi, layout, [tree('bootconfig'), tree('boot-a'), tree('esp')], 'test')).toThrow(/a tree for esp, which is not a FAT partition/);
  });
});
