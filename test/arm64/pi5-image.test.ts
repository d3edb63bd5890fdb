/**
 * `memu build pi5`, read back without mounting anything: the GPT by sfdisk, the FAT boot
 * partitions by mtools, root A by debugfs, and the initrd unpacked from boot A. No Pi 5 is
 * attached here: what this proves is that the image carries what the board needs (the pinned
 * backports kernel with its options, the device trees, an initrd with the NVMe and SD card
 * root's modules, every boot file within the bootloader's limit), not that a board boots it.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfile } from '../../hardware/index.ts';
import { PI5_KERNEL } from '../../hardware/profiles/pi5.ts';
import type { ImageManifest } from '../../image/release/image-manifest.ts';
import { commandResult, runMemu, type BuildOutput } from '../helpers/memu-build.ts';

const exec = promisify(execFile);
const sh = async (cmd: string, args: string[]) => (await exec(cmd, args, { maxBuffer: 256 << 20, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' }, encoding: 'buffer' })).stdout;

/** The Debian kernel release its package is named after: linux-image-<release>. */
const RELEASE = PI5_KERNEL.package.slice('linux-image-'.length);

/**
 * The file names in an initramfs: one or more cpio archives in the kernel's `newc` format,
 * uncompressed ones first, then one compressed with zstd, gzip or xz (what lsinitramfs reads;
 * that tool is not on the build host, so the test reads the format itself and the build's own
 * check runs the image's lsinitramfs).
 */
async function initramfsFiles(image: Buffer): Promise<string[]> {
  const names: string[] = [];
  let at = 0;
  const read = (bytes: Buffer, from: number): number => {
    let pos = from;
    while (pos + 110 <= bytes.length && bytes.toString('latin1', pos, pos + 6) === '070701') {
      const field = (i: number) => parseInt(bytes.toString('latin1', pos + 6 + i * 8, pos + 14 + i * 8), 16);
      const fileSize = field(6);
      const nameSize = field(11);
      const name = bytes.toString('utf8', pos + 110, pos + 110 + nameSize - 1);
      pos = Math.ceil((pos + 110 + nameSize) / 4) * 4;
      pos = Math.ceil((pos + fileSize) / 4) * 4;
      if (name === 'TRAILER!!!') {
        while (pos < bytes.length && bytes[pos] === 0) pos++;
        return pos;
      }
      names.push(name);
    }
    return pos;
  };
  at = read(image, at);
  if (at < image.length) {
    const rest = image.subarray(at);
    const magic = rest.subarray(0, 4).toString('hex');
    const tool = magic === '28b52ffd' ? 'zstd' : rest[0] === 0x1f && rest[1] === 0x8b ? 'gzip' : magic === 'fd377a58' ? 'xz' : undefined;
    if (!tool) throw new Error(`the initrd continues at byte ${at} with neither cpio nor a compressed archive (${magic})`);
    const unpacked = await new Promise<Buffer>((resolve, reject) => {
      const child = execFile(tool, ['-dc'], { encoding: 'buffer', maxBuffer: 1 << 30 }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
      child.stdin!.end(rest);
    });
    read(unpacked, 0);
  }
  return names;
}

describe('memu build pi5 (read back without mounting)', () => {
  let work: string;
  let build: BuildOutput & { initramfsCacheHit?: boolean };
  let manifest: ImageManifest;
  const part = (role: string) => manifest.layout.partitions.find((p) => p.role === role)!;
  const fat = (role: string) => `${build.image}@@${part(role).startBytes}`;
  const debugfs = async (request: string) => (await sh('debugfs', ['-R', request, `${build.image}?offset=${part('root-a').startBytes}`])).toString('utf8');
  let bootFiles: Map<string, number>;
  let initrd: Buffer;

  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-build-pi5-');
    const r = await runMemu(['--json', 'build', 'pi5', '--out', join(work, 'out')], { timeoutMs: 60 * 60_000 });
    if (r.code !== 0) throw new Error(`memu build pi5 failed (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
    build = commandResult<BuildOutput>(r);
    manifest = JSON.parse(await readFile(build.manifest, 'utf8')) as ImageManifest;
    console.log(`memu build pi5: stages ${JSON.stringify(build.stageSeconds)}`);
    // Every file of boot A with its size, read out of the FAT as the firmware would read it.
    const names = (await sh('mdir', ['-i', fat('boot-a'), '-b', '::/'])).toString('utf8').trim().split('\n').map((l) => l.trim().replace(/^::\//, ''));
    bootFiles = new Map();
    for (const name of names) bootFiles.set(name, (await sh('mtype', ['-i', fat('boot-a'), `::/${name}`])).length);
    initrd = await sh('mtype', ['-i', fat('boot-a'), '::/initrd.img']);
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('installs the pinned trixie-backports kernel and no other, and the manifest records it', () => {
    expect(manifest.kernel).toBe(RELEASE);
    const kernels = manifest.packages.filter((p) => p.name.startsWith('linux-image-'));
    expect(kernels).toEqual([{ name: PI5_KERNEL.package, version: PI5_KERNEL.version, arch: 'arm64' }]);
    // The split 7.x packages need linux-base 4.17 or newer, which only backports has.
    const linuxBase = manifest.packages.find((p) => p.name === 'linux-base')!;
    expect(linuxBase.version).toMatch(/~bpo13\+/);
    expect(manifest.packages.find((p) => p.name === `linux-modules-${RELEASE}`)?.version).toBe(PI5_KERNEL.version);
  });

  it('writes the six partitions the firmware and the agent expect, boot B and root B as holes', async () => {
    const table = JSON.parse((await sh('sfdisk', ['--json', build.image])).toString('utf8')).partitiontable;
    expect(table.partitions.map((p: { name: string }) => p.name)).toEqual(['memu-bootconfig', 'memu-boot-a', 'memu-boot-b', 'memu-root-a', 'memu-root-b', 'memu-data']);
    expect((await sh('mtype', ['-i', fat('bootconfig'), '::/autoboot.txt'])).toString('utf8')).toBe(`[all]\ntryboot_a_b=1\nboot_partition=${part('boot-a').number}\n`);
  });

  it('boot A holds the gzip-compressed kernel, the initrd and both board revisions\' device trees, every file below the 32 MiB NVMe limit', async () => {
    const limit = (loadProfile('pi5').firmware as { bootFileLimitBytes: number }).bootFileLimitBytes;
    expect([...bootFiles.keys()]).toEqual(expect.arrayContaining(['vmlinuz', 'initrd.img', 'config.txt', 'cmdline.txt', 'bcm2712-rpi-5-b.dtb', 'bcm2712d0-rpi-5-b.dtb', 'bcm2712-d-rpi-5-b.dtb']));
    for (const [name, size] of bootFiles) expect(size, name).toBeLessThan(limit);
    console.log(`boot A: vmlinuz ${bootFiles.get('vmlinuz')} bytes, initrd.img ${bootFiles.get('initrd.img')} bytes (limit ${limit})`);
    const kernel = await sh('mtype', ['-i', fat('boot-a'), '::/vmlinuz']);
    const image = gunzipSync(kernel);
    // An arm64 Image ("ARMd" at 0x38), the same bytes root A's package installed.
    expect(image.subarray(0x38, 0x3c).toString('latin1')).toBe('ARM\x64');
    expect(image.length).toBeGreaterThan(limit);
    const cmdline = (await sh('mtype', ['-i', fat('boot-a'), '::/cmdline.txt'])).toString('utf8');
    expect(cmdline).toMatch(new RegExp(`^root=PARTUUID=${part('root-a').partUuid} rw rootwait memu\\.slot=a .*console=ttyAMA10,115200`));
  });

  it("has the kernel options a Pi 5 with an NVMe or SD card root needs, with 4K pages (/usr/lib/modules/<release>/config in root A)", async () => {
    const config = await debugfs(`cat /usr/lib/modules/${RELEASE}/config`);
    const value = (option: string) => new RegExp(`^${option}=(.*)$`, 'm').exec(config)?.[1];
    expect(value('CONFIG_ARM64_4K_PAGES')).toBe('y');
    expect(value('CONFIG_ARM64_16K_PAGES')).toBeUndefined();
    for (const option of ['CONFIG_PCIE_BRCMSTB', 'CONFIG_BCM2712_MIP', 'CONFIG_BLK_DEV_NVME', 'CONFIG_MISC_RP1', 'CONFIG_MMC_SDHCI_BRCMSTB', 'CONFIG_EXT4_FS']) {
      expect(['y', 'm'], option).toContain(value(option));
    }
  });

  it('ships an initrd made after the overlays: it carries rp1_pci, irq-bcm2712-mip, nvme, sdhci-brcmstb and ext4, and is the one root A has', async () => {
    const files = await initramfsFiles(initrd);
    const builtin = await debugfs(`cat /usr/lib/modules/${RELEASE}/modules.builtin`);
    const has = (module: string) => {
      const id = module.replaceAll('-', '_');
      const matches = (path: string) => new RegExp(`/${id.replaceAll('_', '[-_]')}\\.ko(\\.(xz|zst|gz))?$`).test(path);
      return files.some(matches) || builtin.split('\n').some(matches);
    };
    for (const module of ['rp1_pci', 'irq-bcm2712-mip', 'nvme', 'sdhci-brcmstb', 'ext4', 'pcie-brcmstb']) expect(has(module), module).toBe(true);
    const rootCopy = join(work, 'root-initrd');
    await exec('debugfs', ['-R', `dump /boot/initrd.img-${RELEASE} ${rootCopy}`, `${build.image}?offset=${part('root-a').startBytes}`]);
    expect((await readFile(rootCopy)).equals(initrd)).toBe(true);
  });

  it('a rebuild with an overlay that does not touch the initrd reuses the cached root filesystem and initrd', async () => {
    const overlay = join(work, 'overlay');
    await mkdir(join(overlay, 'etc/memu'), { recursive: true });
    await writeFile(join(overlay, 'etc/memu/factory-note'), 'station 7\n');
    const r = await runMemu(['--json', 'build', 'pi5', '--out', join(work, 'again'), '--overlay', overlay]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const again = commandResult<BuildOutput>(r);
    console.log(`memu build pi5, warm: stages ${JSON.stringify(again.stageSeconds)}`);
    expect(again.rootfsCacheHit).toBe(true);
    expect(r.stderr).toContain('initrd cache hit');
    const againManifest = JSON.parse(await readFile(again.manifest, 'utf8')) as ImageManifest;
    const bootA = againManifest.layout.partitions.find((p) => p.role === 'boot-a')!;
    expect((await sh('mtype', ['-i', `${again.image}@@${bootA.startBytes}`, '::/initrd.img'])).equals(initrd)).toBe(true);
  });
});
