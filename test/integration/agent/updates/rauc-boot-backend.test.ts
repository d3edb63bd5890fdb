import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerRaucBootBackend, deviceBootBackendDeps } from '../../../../agent/updates/index.ts';
import { loadProfile } from '../../../../hardware/index.ts';
import { computeLayout } from '../../../../image/disk/layout.ts';
import { kernelCmdlineOf } from '../../../../image/pipeline/boot/slot-kernel.ts';
import { systemdBootEntryText, type BootSlot } from '../../../../shared/contracts/boot-slots.ts';

const exec = promisify(execFile);

/**
 * The backend as RAUC drives it on an x86-64 device, with the real parts this machine has:
 * the agent's systemd-boot slots on a directory laid out like the shipped ESP, root B as a
 * real ext4 image (mke2fs -d) read with debugfs, and the layout file the image carries.
 * What the loader does at boot (counting an attempt) is done by the test (loaderStarts).
 */
describe('RAUC boot backend on systemd-boot, with a real root B', () => {
  const layout = computeLayout(loadProfile('qemu-amd64'), 'rauc-boot-backend-test');
  const profile = loadProfile('qemu-amd64');
  const kernel = Buffer.alloc(300_000, 7);
  const initrd = Buffer.alloc(500_000, 9);
  let dir: string;
  let esp: string;
  const devices: Record<string, string> = {};
  const cmdlinePath = () => join(dir, 'cmdline');
  const runningOn = (slot: BootSlot) => writeFile(cmdlinePath(), `${kernelCmdlineOf(profile, layout, slot)}\n`);
  const call = async (...args: string[]) =>
    answerRaucBootBackend(args, await deviceBootBackendDeps({ layoutPath: join(dir, 'layout.json'), espDir: esp, cmdlinePath: cmdlinePath(), partitionDevice: (label) => devices[label] ?? `/nonexistent/${label}` }));
  const entries = async () => (await readdir(join(esp, 'loader/entries'))).sort();

  /** A root filesystem image as a release writes it into a slot: built as slot A's. */
  const makeRoot = async (name: string, files: Record<string, Buffer | string>) => {
    const tree = join(dir, `${name}-tree`);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(tree, path, '..'), { recursive: true });
      await writeFile(join(tree, path), content);
    }
    const image = join(dir, `${name}.ext4`);
    await exec('truncate', ['-s', '16M', image]);
    await exec('mke2fs', ['-q', '-t', 'ext4', '-d', tree, image]);
    return image;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-rauc-backend-'));
    esp = join(dir, 'esp');
    await writeFile(join(dir, 'layout.json'), JSON.stringify(layout));
    await mkdir(join(esp, 'loader/entries'), { recursive: true });
    await mkdir(join(esp, 'memu/a'), { recursive: true });
    await writeFile(join(esp, 'loader/loader.conf'), 'default memu-a.conf\ntimeout 0\neditor no\nconsole-mode keep\n');
    await writeFile(join(esp, 'loader/entries/memu-a.conf'), systemdBootEntryText({ slot: 'a', kernelVersion: '6.12.1-amd64', kernelCmdline: kernelCmdlineOf(profile, layout, 'a') }));
    await writeFile(join(esp, 'memu/a/vmlinuz'), 'kernel a');
    await writeFile(join(esp, 'memu/a/initrd.img'), 'initrd a');
    await runningOn('a');
    devices['memu-root-b'] = await makeRoot('release', {
      'boot/vmlinuz-6.12.9-amd64': 'old kernel',
      'boot/initrd.img-6.12.9-amd64': 'old initrd',
      'boot/vmlinuz-6.12.10-amd64': kernel,
      'boot/initrd.img-6.12.10-amd64': initrd,
      // A kernel without its initrd is not bootable and never picked.
      'boot/vmlinuz-6.13.0-amd64': 'kernel without an initrd',
      'etc/kernel/cmdline': `${kernelCmdlineOf(profile, layout, 'a')} quiet\n`,
    });
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('refuses to arm a slot whose root has no command line, and leaves the ESP as it was', async () => {
    devices['memu-root-b'] = await makeRoot('broken', { 'boot/vmlinuz-6.12.10-amd64': kernel, 'boot/initrd.img-6.12.10-amd64': initrd });
    const r = await call('set-primary', 'b');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/set-primary b: debugfs -R 'cat \/etc\/kernel\/cmdline' .*broken\.ext4: \/etc\/kernel\/cmdline: File not found/);
    expect(await entries()).toEqual(['memu-a.conf']);
    expect((await call('get-primary')).stdout).toBe('a\n');
    devices['memu-root-b'] = join(dir, 'release.ext4');
    delete devices['memu-root-b'];
    const missing = await call('set-primary', 'b');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('/nonexistent/memu-root-b');
    devices['memu-root-b'] = join(dir, 'release.ext4');
  });

  it('an install as RAUC makes it: set-state bad, set-primary; the slot boots on trial with its own command line, and mark-good commits it', async () => {
    expect(await call('get-current')).toEqual({ exitCode: 0, stdout: 'a\n', stderr: '' });
    expect(await call('get-state', 'b')).toMatchObject({ exitCode: 0, stdout: 'bad\n' });
    expect(await call('set-state', 'b', 'bad')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(await call('set-primary', 'b')).toEqual({ exitCode: 0, stdout: '', stderr: '' });

    // The newest kernel with an initrd, copied whole; nothing temporary left on the ESP.
    expect((await readFile(join(esp, 'memu/b/vmlinuz'))).equals(kernel), 'vmlinuz on the ESP is the slot\'s').toBe(true);
    expect((await readFile(join(esp, 'memu/b/initrd.img'))).equals(initrd), 'initrd.img on the ESP is the slot\'s').toBe(true);
    expect((await readdir(join(esp, 'memu/b'))).sort()).toEqual(['initrd.img', 'vmlinuz']);
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b+3.conf']);
    const entry = await readFile(join(esp, 'loader/entries/memu-b+3.conf'), 'utf8');
    expect(entry).toContain('version 6.12.10-amd64');
    // Root B's partition and slot, the release's other options kept.
    const rootB = layout.partitions.find((p) => p.role === 'root-b')!.partUuid;
    expect(entry).toContain(`options root=PARTUUID=${rootB} memu.slot=b rw rootwait console=tty0 console=ttyS0,115200 systemd.show_status=true panic=10 no_timer_check quiet\n`);
    expect(await call('get-primary')).toMatchObject({ stdout: 'b\n' });
    expect(await call('get-state', 'b')).toMatchObject({ stdout: 'good\n' });

    // The loader starts B (one attempt used), the agent finds the stack healthy: rauc status mark-good.
    await rename(join(esp, 'loader/entries/memu-b+3.conf'), join(esp, 'loader/entries/memu-b+2-1.conf'));
    await runningOn('b');
    expect(await call('get-current')).toMatchObject({ stdout: 'b\n' });
    expect(await call('set-state', 'b', 'good')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b.conf']);
    expect(await call('get-primary')).toMatchObject({ stdout: 'b\n' });
    expect(await call('get-state', 'a')).toMatchObject({ stdout: 'good\n' });
    // RAUC's `mark-active booted` on the running slot: nothing moves.
    expect(await call('set-primary', 'b')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(await entries()).toEqual(['memu-a.conf', 'memu-b.conf']);
  });
});

/**
 * The Pi 5's side: RAUC wrote the slot's boot partition itself (a child slot of its root),
 * so set-primary only checks it and arms tryboot in autoboot.txt. Real FAT (mkfs.vfat,
 * mcopy) and ext4 images; a directory for the bootconfig partition.
 */
describe('RAUC boot backend on tryboot, with a real boot B and root B', () => {
  const layout = computeLayout(loadProfile('pi5'), 'rauc-boot-backend-test');
  const number = (role: string) => layout.partitions.find((p) => p.role === role)!.number;
  let dir: string;
  const devices: Record<string, string> = {};
  const call = async (...args: string[]) =>
    answerRaucBootBackend(
      args,
      await deviceBootBackendDeps({
        layoutPath: join(dir, 'layout.json'),
        bootconfigDir: join(dir, 'bootconfig'),
        cmdlinePath: join(dir, 'cmdline'),
        bootIdPath: join(dir, 'boot_id'),
        partitionDevice: (label) => devices[label]!,
      }),
    );
  const bootPartition = async (name: string, cmdlineTxt: string) => {
    const image = join(dir, `${name}.vfat`);
    await writeFile(join(dir, 'cmdline.txt'), cmdlineTxt);
    await exec('truncate', ['-s', '4M', image]);
    await exec('mkfs.vfat', ['-n', 'MEMU-BOOT', image]);
    await exec('mcopy', ['-i', image, join(dir, 'cmdline.txt'), '::/cmdline.txt'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    return image;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-rauc-backend-pi-'));
    await writeFile(join(dir, 'layout.json'), JSON.stringify(layout));
    await mkdir(join(dir, 'bootconfig'));
    await writeFile(join(dir, 'bootconfig/autoboot.txt'), `[all]\ntryboot_a_b=1\nboot_partition=${number('boot-a')}\n`);
    await writeFile(join(dir, 'cmdline'), 'console=serial0,115200 root=PARTUUID=x rootwait memu.slot=a\n');
    await writeFile(join(dir, 'boot_id'), 'boot-1\n');
    const tree = join(dir, 'root-tree');
    await mkdir(join(tree, 'boot'), { recursive: true });
    await writeFile(join(tree, 'boot/vmlinuz-6.12.47+rpt-rpi-2712'), 'kernel');
    await writeFile(join(tree, 'boot/initrd.img-6.12.47+rpt-rpi-2712'), 'initrd');
    devices['memu-root-b'] = join(dir, 'root-b.ext4');
    await exec('truncate', ['-s', '16M', devices['memu-root-b']]);
    await exec('mke2fs', ['-q', '-t', 'ext4', '-d', tree, devices['memu-root-b']]);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("makes the release's cmdline.txt (built for slot A) the slot's own, arms tryboot, and refuses one that names no root", async () => {
    devices['memu-boot-b'] = await bootPartition('boot-b-no-root', 'console=serial0,115200 rootwait memu.slot=a\n');
    const wrong = await call('set-primary', 'b');
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr).toContain("the release's kernel command line names no root=");
    expect(await readFile(join(dir, 'bootconfig/autoboot.txt'), 'utf8')).toBe(`[all]\ntryboot_a_b=1\nboot_partition=${number('boot-a')}\n`);

    const rootA = layout.partitions.find((p) => p.role === 'root-a')!.partUuid;
    const rootB = layout.partitions.find((p) => p.role === 'root-b')!.partUuid;
    devices['memu-boot-b'] = await bootPartition('boot-b', `console=serial0,115200 root=PARTUUID=${rootA} rootwait memu.slot=a\n`);
    expect(await call('set-primary', 'b')).toEqual({ exitCode: 0, stdout: '', stderr: '' });
    expect(await readFile(join(dir, 'bootconfig/autoboot.txt'), 'utf8')).toBe(`[all]\ntryboot_a_b=1\nboot_partition=${number('boot-a')}\n[tryboot]\nboot_partition=${number('boot-b')}\n# memu-trial slot=b armed-in-boot=boot-1\n`);
    // A normal reset still starts A; the armed trial counts as good until it is spent.
    expect(await call('get-primary')).toMatchObject({ stdout: 'a\n' });
    expect(await call('get-state', 'b')).toMatchObject({ stdout: 'good\n' });
    const { stdout } = await exec('mtype', ['-i', devices['memu-boot-b']!, '::/cmdline.txt'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
    expect(stdout).toBe(`console=serial0,115200 root=PARTUUID=${rootB} memu.slot=b rootwait\n`);
  });
});
