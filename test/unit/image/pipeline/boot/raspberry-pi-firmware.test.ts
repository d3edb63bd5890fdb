import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { mkdir, readFile, readdir, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTrybootBootSlots } from '../../../../../agent/boot-slots/index.ts';
import { piFirmwareBoot } from '../../../../../agent/boot-slots/pi-firmware-model.ts';
import { loadProfile, validateProfile, type HardwareProfile } from '../../../../../hardware/index.ts';
import { pi5 } from '../../../../../hardware/profiles/pi5.ts';
import { computeLayout, partitionByRole } from '../../../../../image/disk/layout.ts';
import { ExitCode, MemuError } from '../../../../../image/host/errors.ts';
import { bootBackendFor, prepareBoot } from '../../../../../image/pipeline/boot/boot-stage.ts';
import { appliedSetting, parseAutobootTxt } from '../../../../../shared/contracts/autoboot-txt.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

/**
 * The Pi 5 backend against a staged root tree made of small files laid out as Debian's
 * arm64 kernel packages lay them out, through the boot stage as `memu build` runs it.
 */
const VERSION = '7.3.4+deb13-arm64';
const LIMIT = (loadProfile('pi5').firmware as { bootFileLimitBytes: number }).bootFileLimitBytes;
/** What Debian's generic arm64 flavour has of the options the pi5 profile requires. */
const GENERIC_CONFIG = [
  'CONFIG_ARM64_4K_PAGES=y',
  '# CONFIG_ARM64_16K_PAGES is not set',
  'CONFIG_PCIE_BRCMSTB=y',
  'CONFIG_BCM2712_MIP=m',
  'CONFIG_BLK_DEV_NVME=m',
  'CONFIG_MISC_RP1=m',
  'CONFIG_COMMON_CLK_RP1=m',
  'CONFIG_PINCTRL_RP1=m',
  'CONFIG_MMC_SDHCI_BRCMSTB=m',
  'CONFIG_EXT4_FS=m',
  'CONFIG_SERIAL_AMBA_PL011=y',
].join('\n');
const C0_TREE = 'C0 device tree';
const D0_TREE = 'D0 device tree';

/** An arm64 `Image` as the kernel build leaves it: a PE header, "ARMd" at 0x38, then code. */
function armImage(bytes = 64 * 1024): Buffer {
  const image = randomBytes(bytes);
  image.write('MZ', 0, 'latin1');
  image.write('ARM\x64', 0x38, 'latin1');
  return image;
}

interface TreeOptions {
  /** The kernel's bytes, or a gzip archive padded (sparse) to this many bytes. */
  kernel?: Buffer | { gzipOfBytes: number };
  /** Initrd size in bytes (sparse); undefined: a small one; null: none. */
  initrdBytes?: number | null;
  dtbs?: string[];
  /** Where the package keeps its device trees: 7.x under /usr/lib/modules, linked from /usr/lib/linux-image-<v>; 6.x in /usr/lib/linux-image-<v>. */
  dtbLayout?: '7.x' | '6.x';
  overlays?: boolean;
  /** The kernel's configuration file (/usr/lib/modules/<v>/config), Debian's generic arm64 one by default. */
  kernelConfig?: string;
}

async function stagedTree(dir: string, opts: TreeOptions = {}): Promise<string> {
  const tree = join(dir, 'root');
  await mkdir(join(tree, 'boot'), { recursive: true });
  const kernelPath = join(tree, 'boot', `vmlinuz-${VERSION}`);
  const kernel = opts.kernel ?? armImage();
  if (Buffer.isBuffer(kernel)) await writeFile(kernelPath, kernel);
  else {
    await writeFile(kernelPath, Buffer.from([0x1f, 0x8b, 0x08, 0x00]));
    await truncate(kernelPath, kernel.gzipOfBytes);
  }
  if (opts.initrdBytes !== null) {
    const initrdPath = join(tree, 'boot', `initrd.img-${VERSION}`);
    await writeFile(initrdPath, 'initrd');
    if (opts.initrdBytes !== undefined) await truncate(initrdPath, opts.initrdBytes);
  }
  const dtbDir =
    opts.dtbLayout === '6.x' ? join(tree, `usr/lib/linux-image-${VERSION}/broadcom`) : join(tree, `usr/lib/modules/${VERSION}/dtb/broadcom`);
  await mkdir(dtbDir, { recursive: true });
  if (opts.dtbLayout !== '6.x') await symlink(`modules/${VERSION}/dtb`, join(tree, `usr/lib/linux-image-${VERSION}`));
  await mkdir(join(tree, `usr/lib/modules/${VERSION}`), { recursive: true });
  await writeFile(join(tree, `usr/lib/modules/${VERSION}/config`), `${opts.kernelConfig ?? GENERIC_CONFIG}\n`);
  for (const name of opts.dtbs ?? ['bcm2711-rpi-4-b.dtb', 'bcm2712-rpi-5-b.dtb', 'bcm2712-d-rpi-5-b.dtb', 'bcm2712-rpi-cm5-cm5io.dtb']) {
    await writeFile(join(dtbDir, name), name === 'bcm2712-rpi-5-b.dtb' ? C0_TREE : name.includes('-d-') || name.includes('d0-') ? D0_TREE : name);
  }
  if (opts.overlays) {
    await mkdir(join(dtbDir, 'overlays'), { recursive: true });
    await writeFile(join(dtbDir, 'overlays/README'), 'overlays');
    await writeFile(join(dtbDir, 'overlays/some-hat.dtbo'), 'overlay');
  }
  return tree;
}

async function build(opts: TreeOptions = {}, profile: HardwareProfile = loadProfile('pi5')) {
  const dir = await tempDir('memu-pi-boot-');
  const tree = await stagedTree(dir, opts);
  const workDir = join(dir, 'work');
  const layout = computeLayout(profile, `memu-os:${profile.name}`);
  const boot = await prepareBoot({ backend: bootBackendFor(profile), tree, workDir, profile, layout });
  const dirOf = (role: string) => boot.fatPartitions.find((p) => p.role === role)!.sourceDir;
  return { dir, tree, layout, boot, bootconfig: dirOf('bootconfig'), bootA: dirOf('boot-a') };
}

async function failure(run: () => Promise<unknown>): Promise<MemuError> {
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(MemuError);
  return err as MemuError;
}

/** config.txt's `key=value` settings and `initramfs FILE ADDRESS` line, in order. */
function configSettings(text: string): { key: string; value: string }[] {
  return text
    .split('\n')
    .map((line) => /^(initramfs) (.*)$|^([A-Za-z0-9_]+)=(.*)$/.exec(line))
    .filter((m) => m !== null)
    .map((m) => ({ key: (m[1] ?? m[3])!, value: (m[2] ?? m[4])! }));
}

describe('the Raspberry Pi 5 boot backend', () => {
  it('ships autoboot.txt that the agent and the firmware model read as: boot A next, nothing on trial', async () => {
    const { dir, tree, layout, bootconfig, bootA } = await build();
    const bootAPartition = partitionByRole(layout, 'boot-a').number;
    const text = await readFile(join(bootconfig, 'autoboot.txt'), 'utf8');
    expect(text).toBe(`[all]\ntryboot_a_b=1\nboot_partition=${bootAPartition}\n`);
    expect(await readdir(bootconfig)).toEqual(['autoboot.txt']);

    const doc = parseAutobootTxt(text);
    expect(appliedSetting(doc, 'tryboot_a_b', { tryboot: true })?.value).toBe('1');
    // Boot B ships empty, so boot A is the only partition with a config.txt.
    expect(await readdir(bootA)).toContain('config.txt');
    for (const trybootFlag of [false, true]) {
      expect(piFirmwareBoot({ autobootTxt: text, trybootFlag, bootablePartitions: [bootAPartition] })).toEqual({ partition: bootAPartition, configFile: 'config.txt', trybootFlag: false });
    }

    // The agent's own view on the first boot: the layout the image records, the command line boot A starts.
    await writeFile(join(dir, 'cmdline'), await readFile(join(bootA, 'cmdline.txt')));
    await writeFile(join(dir, 'boot_id'), 'first-boot\n');
    const slots = createTrybootBootSlots({ bootconfigDir: bootconfig, cmdlinePath: join(dir, 'cmdline'), bootIdPath: join(dir, 'boot_id'), layoutPath: join(tree, 'etc/memu/layout.json') });
    expect(await slots.status()).toEqual({ current: 'a', nextBoot: 'a', slots: { a: { slot: 'a', state: 'good' }, b: { slot: 'b', state: 'absent' } } });
  });

  it("writes boot A's cmdline.txt as one line: root-a by PARTUUID, memu.slot=a and the serial console; slot B's names root-b", async () => {
    const { layout, boot, bootA } = await build();
    const text = await readFile(join(bootA, 'cmdline.txt'), 'utf8');
    expect(text.split('\n')).toEqual([boot.kernelCmdline.a, '']);
    const words = boot.kernelCmdline.a.split(' ');
    expect(words.slice(0, 4)).toEqual([`root=PARTUUID=${partitionByRole(layout, 'root-a').partUuid}`, 'rw', 'rootwait', 'memu.slot=a']);
    expect(words).toContain('console=ttyAMA10,115200');
    expect(boot.kernelCmdline.b).toMatch(new RegExp(`^root=PARTUUID=${partitionByRole(layout, 'root-b').partUuid} rw rootwait memu\\.slot=b `));
    expect(boot.kernelVersion).toBe(VERSION);
  });

  it("writes config.txt naming the kernel and initrd it put beside it, in 64-bit mode with the serial console, then the profile's lines", async () => {
    const { bootA } = await build();
    const settings = configSettings(await readFile(join(bootA, 'config.txt'), 'utf8'));
    const value = (key: string) => settings.filter((s) => s.key === key).map((s) => s.value);
    expect(value('kernel')).toEqual(['vmlinuz']);
    const [initrd, address] = value('initramfs')[0]!.split(' ');
    expect(address).toBe('followkernel');
    for (const file of [value('kernel')[0]!, initrd!]) expect((await stat(join(bootA, file))).isFile()).toBe(true);
    expect(await readFile(join(bootA, initrd!), 'utf8')).toBe('initrd');
    expect(value('arm_64bit')).toEqual(['1']);
    expect(value('enable_uart')).toEqual(['1']);
    expect(settings.at(-1)).toEqual({ key: 'disable_splash', value: '1' });
  });

  it('ships a plain arm64 Image gzip-compressed, which unpacks to the same bytes, and a gzip archive as it is', async () => {
    const image = armImage(256 * 1024);
    const plain = await build({ kernel: image });
    const shipped = await readFile(join(plain.bootA, 'vmlinuz'));
    expect(shipped.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(gunzipSync(shipped).equals(image)).toBe(true);

    const gzipped = await build({ kernel: { gzipOfBytes: 4096 } });
    expect((await stat(join(gzipped.bootA, 'vmlinuz'))).size).toBe(4096);
  });

  it('refuses an EFI zboot kernel and a file that is no arm64 kernel, naming it', async () => {
    const zboot = Buffer.alloc(4096);
    zboot.write('MZ', 0, 'latin1');
    zboot.write('zimg', 4, 'latin1');
    const err = await failure(() => build({ kernel: zboot }));
    expect(err.message).toBe(`/boot/vmlinuz-${VERSION} is an EFI zboot image, which only UEFI firmware can start; the Raspberry Pi firmware starts an arm64 Image or a gzip archive of one`);
    expect(err.exitCode).toBe(ExitCode.badInput);
    expect((await failure(() => build({ kernel: Buffer.from('#!/bin/sh\n') }))).message).toMatch(/vmlinuz-7\.3\.4\+deb13-arm64 is neither an arm64 kernel Image nor a gzip archive of one/);
  });

  it("puts both board revisions' device trees under the firmware's names, the CM5's and the kernel's overlays, and no other board's", async () => {
    const { bootA } = await build({ overlays: true });
    expect(await readFile(join(bootA, 'bcm2712-rpi-5-b.dtb'), 'utf8')).toBe(C0_TREE);
    expect(await readFile(join(bootA, 'bcm2712d0-rpi-5-b.dtb'), 'utf8')).toBe(D0_TREE);
    expect(await readFile(join(bootA, 'bcm2712-d-rpi-5-b.dtb'), 'utf8')).toBe(D0_TREE);
    const files = await readdir(bootA);
    expect(files).toContain('bcm2712-rpi-cm5-cm5io.dtb');
    expect(files).not.toContain('bcm2711-rpi-4-b.dtb');
    expect((await readdir(join(bootA, 'overlays'))).sort()).toEqual(['README', 'some-hat.dtbo']);
  });

  it('finds the device trees where 6.x kernel packages keep them too, and takes a D0 tree under the firmware name as it is', async () => {
    const { bootA } = await build({ dtbLayout: '6.x', dtbs: ['bcm2712-rpi-5-b.dtb', 'bcm2712d0-rpi-5-b.dtb'] });
    expect(await readFile(join(bootA, 'bcm2712d0-rpi-5-b.dtb'), 'utf8')).toBe(D0_TREE);
    expect((await readdir(bootA)).filter((n) => n.endsWith('.dtb')).sort()).toEqual(['bcm2712-rpi-5-b.dtb', 'bcm2712d0-rpi-5-b.dtb']);
    expect(await readdir(bootA)).not.toContain('overlays');
  });

  it('fails clearly when the kernel has no Pi 5 device tree for a board revision', async () => {
    const noD0 = await failure(() => build({ dtbs: ['bcm2711-rpi-4-b.dtb', 'bcm2712-rpi-5-b.dtb'] }));
    expect(noD0.message).toBe(
      `kernel ${VERSION} has no Raspberry Pi 5 device tree for boards with the D0 stepping (bcm2712d0-rpi-5-b.dtb or bcm2712-d-rpi-5-b.dtb) in /usr/lib/linux-image-${VERSION}/broadcom or /usr/lib/modules/${VERSION}/dtb/broadcom`,
    );
    expect(noD0.hint).toMatch(/linux-image-arm64 from trixie-backports/);
    const none = await failure(() => build({ dtbs: [] }));
    expect(none.message).toMatch(/for boards with the C0 stepping \(bcm2712-rpi-5-b\.dtb\) and boards with the D0 stepping/);
  });

  it('fails clearly when the kernel has no initrd', async () => {
    const err = await failure(() => build({ initrdBytes: null }));
    expect(err.message).toBe(`the root filesystem has kernel ${VERSION} but no /boot/initrd.img-${VERSION}`);
  });

  it('gives boot B no tree, which the boot stage accepts, and mounts bootconfig and boot A by PARTUUID when first used', async () => {
    const { tree, layout, boot } = await build();
    expect(boot.fatPartitions.map((p) => [p.role, p.volumeLabel])).toEqual([
      ['bootconfig', 'MEMU-CONFIG'],
      ['boot-a', 'MEMU-BOOT-A'],
    ]);
    const options = 'vfat umask=0077,noauto,x-systemd.automount,x-systemd.idle-timeout=60 0 2';
    expect(boot.fstabLines).toEqual([
      `PARTUUID=${partitionByRole(layout, 'bootconfig').partUuid} /boot/bootconfig ${options}`,
      `PARTUUID=${partitionByRole(layout, 'boot-a').partUuid} /boot/firmware ${options}`,
    ]);
    const fstab = (await readFile(join(tree, 'etc/fstab'), 'utf8')).trim().split('\n');
    expect(fstab.slice(-2)).toEqual(boot.fstabLines);
    for (const mountPoint of ['boot/bootconfig', 'boot/firmware']) expect((await stat(join(tree, mountPoint))).isDirectory()).toBe(true);
  });

  it('refuses a kernel of 32 MiB or more, naming the file, its size and the limit; one byte less boots', async () => {
    const err = await failure(() => build({ kernel: { gzipOfBytes: LIMIT } }));
    expect(err.message).toMatch(
      /^boot-a\/vmlinuz would be 33554432 bytes \(32\.0 MiB\); a Raspberry Pi 5 bootloader older than 2025-06-09 cannot load a file of 33554432 bytes \(32\.0 MiB\) or more from NVMe/,
    );
    expect(err.hint).toMatch(/smaller kernel/);
    const { bootA } = await build({ kernel: { gzipOfBytes: LIMIT - 1 } });
    expect((await stat(join(bootA, 'vmlinuz'))).size).toBe(LIMIT - 1);
  });

  it("refuses a kernel without an option the profile's kernel pin requires: the 16K-page flavour, one without the NVMe driver", async () => {
    const sixteenK = GENERIC_CONFIG.replace('CONFIG_ARM64_4K_PAGES=y', '# CONFIG_ARM64_4K_PAGES is not set').replace('# CONFIG_ARM64_16K_PAGES is not set', 'CONFIG_ARM64_16K_PAGES=y');
    const err = await failure(() => build({ kernelConfig: sixteenK }));
    expect(err.message).toBe(`kernel ${VERSION} lacks what profile pi5 needs: CONFIG_ARM64_4K_PAGES is not set, needs y`);
    expect(err.hint).toMatch(/not the 16K-page flavour/);
    const noNvme = await failure(() => build({ kernelConfig: GENERIC_CONFIG.replace('CONFIG_BLK_DEV_NVME=m', '# CONFIG_BLK_DEV_NVME is not set').replace('CONFIG_SERIAL_AMBA_PL011=y', 'CONFIG_SERIAL_AMBA_PL011=m') }));
    expect(noNvme.message).toBe(`kernel ${VERSION} lacks what profile pi5 needs: CONFIG_BLK_DEV_NVME is not set, needs y or m; CONFIG_SERIAL_AMBA_PL011 is m, needs y`);
  });

  it('refuses an initrd over the limit, saying how to make it smaller', async () => {
    const err = await failure(() => build({ initrdBytes: 40 * 1024 * 1024 }));
    expect(err.message).toMatch(/^boot-a\/initrd\.img would be 41943040 bytes \(40\.0 MiB\); .* or more from NVMe/);
    expect(err.hint).toMatch(/MODULES=list/);
  });

  it('refuses a profile whose config.txt lines set what the backend writes', async () => {
    for (const line of ['kernel=kernel8.img', 'initramfs other.img followkernel', ' arm_64bit = 0']) {
      const profile = validateProfile({ ...pi5, firmware: { ...pi5.firmware, configTxt: ['disable_splash=1', line] } }, 'pi5');
      const err = await failure(() => build({}, profile));
      expect(err.message).toContain(`profile pi5: firmware.configTxt line "${line}" sets ${line.trim().split(/[= ]/)[0]}, which the Raspberry Pi boot backend writes itself`);
    }
  });

  it("adds only the two mount points to the root tree's /boot", async () => {
    const { tree } = await build();
    expect((await readdir(join(tree, 'boot'))).sort()).toEqual(['bootconfig', 'firmware', `initrd.img-${VERSION}`, `vmlinuz-${VERSION}`]);
  });
});
