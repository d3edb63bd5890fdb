import { execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { declaredUncompressedSize } from '../../../../image/flash/compression.ts';
import type { ImageManifest } from '../../../../image/release/image-manifest.ts';
import { developmentRaucPkiDir } from '../../../../image/pipeline/rauc-config.ts';
import { createRaucBundle, raucManifestText } from '../../../../image/release/rauc-bundle.ts';
import { raucSystemConf } from '../../../../image/release/rauc-system-conf.ts';
import { buildQemuImage, commandResult, runMemu, TEST_CACHE_DIR, type BuildOutput } from '../../../helpers/memu-build.ts';

const exec = promisify(execFile);
const sh = async (cmd: string, args: string[]) => (await exec(cmd, args, { maxBuffer: 64 << 20, env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } })).stdout;

describe('memu build qemu-amd64', () => {
  let work: string;
  let a: BuildOutput;
  let manifest: ImageManifest;
  const part = (role: string) => manifest.layout.partitions.find((p) => p.role === role)!;
  const ext4 = (role: string) => `${a.image}?offset=${part(role).startBytes}`;
  const debugfs = (role: string, request: string) => sh('debugfs', ['-R', request, ext4(role)]);
  const fat = (file: string) => sh('mtype', ['-i', `${a.image}@@${part('esp').startBytes}`, `::/${file}`]);

  beforeAll(async () => {
    await mkdir('/var/tmp', { recursive: true });
    work = await mkdtemp('/var/tmp/memu-build-test-');
    a = await buildQemuImage(join(work, 'a'));
    manifest = JSON.parse(await readFile(a.manifest, 'utf8')) as ImageManifest;
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('writes a GPT with ESP, root A, root B and data exactly as the manifest says', async () => {
    const table = JSON.parse(await sh('sfdisk', ['--json', a.image])).partitiontable;
    expect(table.label).toBe('gpt');
    expect(table.id.toLowerCase()).toBe(manifest.layout.diskGuid);
    expect(table.partitions).toHaveLength(4);
    for (const [i, p] of manifest.layout.partitions.entries()) {
      const got = table.partitions[i];
      expect(got.name).toBe(p.label);
      expect(got.uuid.toLowerCase()).toBe(p.partUuid);
      expect(got.type.toUpperCase()).toBe(p.typeGuid);
      expect(got.start * 512).toBe(p.startBytes);
      expect(got.size * 512).toBe(p.sizeBytes);
    }
  });

  it('boots with systemd-boot: the ESP holds the loader, the kernel and a slot A entry naming root A by PARTUUID', async () => {
    const listing = await sh('mdir', ['-i', `${a.image}@@${part('esp').startBytes}`, '-b', '::/', '-/']);
    expect(listing).toMatch(/EFI\/BOOT\/BOOTX64\.EFI/i);
    expect(listing).toMatch(/memu\/a\/vmlinuz/i);
    expect(listing).toMatch(/memu\/a\/initrd\.img/i);
    const entry = await fat('loader/entries/memu-a.conf');
    expect(entry).toContain(`root=PARTUUID=${part('root-a').partUuid}`);
    expect(entry).toContain('linux /memu/a/vmlinuz');
    expect(await fat('loader/loader.conf')).toContain('default memu-a.conf');
  });

  it('puts the agent, its enabled unit, the layout and the overlays in root A — and no SSH host keys or build-host names', async () => {
    expect(JSON.parse(await debugfs('root-a', 'cat /etc/memu/layout.json'))).toEqual(manifest.layout);
    expect(await debugfs('root-a', 'stat /usr/lib/memu/agent/memu-agent.mjs')).toMatch(/Size: [1-9]\d{5,}/);
    // memu.db's SQLite, beside the bundle where family-db.ts loads it from.
    expect(await debugfs('root-a', 'stat /usr/lib/memu/agent/better_sqlite3.node')).toMatch(/Size: [1-9]\d{5,}/);
    expect(await debugfs('root-a', 'ls /etc/systemd/system/multi-user.target.wants')).toContain('memu-agent.service');
    expect(JSON.parse(await debugfs('root-a', 'cat /etc/docker/daemon.json'))['data-root']).toBe('/var/lib/memu/docker');
    const fstab = await debugfs('root-a', 'cat /etc/fstab');
    expect(fstab).toContain(`PARTUUID=${part('data').partUuid} /var/lib/memu ext4`);
    // The data partition is checked by memu's own fsck unit (systemd-fsck@ is bound to the
    // device, and the partition's growth on first boot would unmount it through that).
    expect(fstab).toMatch(/\/var\/lib\/memu ext4 \S*x-systemd\.requires=memu-data-fsck\.service\S* 0 0/);
    expect(await debugfs('root-a', 'cat /etc/systemd/system/memu-data-fsck.service')).toContain(`ExecStart=/usr/lib/systemd/systemd-fsck /dev/disk/by-partuuid/${part('data').partUuid}`);
    expect((await debugfs('root-a', 'cat /etc/hostname')).trim()).toBe('memu');
    expect(await debugfs('root-a', 'ls /etc/ssh')).not.toMatch(/ssh_host_/);
    const resolv = await exec('debugfs', ['-R', 'stat /etc/resolv.conf', ext4('root-a')]);
    expect(resolv.stdout + resolv.stderr).toMatch(/File not found/);
    expect(manifest.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['docker.io', 'nodejs', 'systemd', 'linux-image-amd64']));
  });

  it('carries RAUC: the package (started only on demand), system.conf from the layout, the development CA it reports, and the boot backend', async () => {
    expect(manifest.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['rauc', 'rauc-service']));
    expect(await debugfs('root-a', 'cat /etc/rauc/system.conf')).toBe(raucSystemConf(manifest.layout));
    // Nothing of RAUC runs at boot: rauc.service is D-Bus activated and enabled nowhere.
    expect(await debugfs('root-a', 'cat /usr/lib/systemd/system/rauc.service')).not.toContain('[Install]');
    for (const dir of ['multi-user.target.wants', 'sysinit.target.wants', 'basic.target.wants']) {
      expect(await debugfs('root-a', `ls /etc/systemd/system/${dir}`).catch(() => '')).not.toMatch(/rauc/);
    }
    expect(await debugfs('root-a', 'cat /etc/systemd/system/rauc.service.d/memu-data.conf')).toContain('RequiresMountsFor=/var/lib/memu');
    // Without --rauc-keyring: the development CA under the cache, named in the build's result.
    const pki = developmentRaucPkiDir(TEST_CACHE_DIR);
    const keyring = await debugfs('root-a', 'cat /etc/rauc/keyring.pem');
    expect(keyring).toBe(await readFile(join(pki, 'ca.cert.pem'), 'utf8'));
    const reported = a.raucKeyring;
    expect(reported.source).toBe('development');
    expect(reported.identity.certificates.map((c) => c.sha256Fingerprint)).toEqual([new X509Certificate(keyring).fingerprint256]);
    // And in the signed manifest, for an operator who has only the release's files.
    expect(manifest.raucKeyring).toEqual({ source: 'development', certificates: reported.identity.certificates });
    const backend = await debugfs('root-a', 'stat /usr/lib/memu/rauc-boot-backend');
    expect(backend).toMatch(/Mode:\s+0755/);
    expect(await debugfs('root-a', 'cat /usr/lib/memu/rauc-boot-backend')).toMatch(/^#!\/bin\/sh\n[\s\S]*\nexec \/usr\/sbin\/memu-agent rauc-boot-backend "\$@"\n$/);
    // Real RAUC loads the image's system.conf and accepts, against the image's keyring, a
    // bundle signed with the development signer beside that CA (what `memu release` uses there).
    const raucDir = join(work, 'rauc');
    await mkdir(join(raucDir, 'bundle-input'), { recursive: true });
    await writeFile(join(raucDir, 'system.conf'), await debugfs('root-a', 'cat /etc/rauc/system.conf'));
    await writeFile(join(raucDir, 'keyring.pem'), keyring);
    // Random bytes: RAUC refuses a bundle whose squashfs is a single 4 KiB block.
    await writeFile(join(raucDir, 'bundle-input/rootfs.ext4'), randomBytes(64 * 1024));
    const bundle = join(raucDir, 'tiny.raucb');
    await createRaucBundle({
      inputDir: join(raucDir, 'bundle-input'),
      bundlePath: bundle,
      manifestText: raucManifestText({ profile: 'qemu-amd64', version: '0.1.1', build: 'test', images: [{ slotClass: 'rootfs', fileName: 'rootfs.ext4', adaptive: false }] }),
      signer: { certPath: join(pki, 'signing.cert.pem'), keyPath: join(pki, 'signing.key.pem') },
      keyring: join(raucDir, 'keyring.pem'),
    });
    const info = await exec('rauc', [`--conf=${join(raucDir, 'system.conf')}`, `--keyring=${join(raucDir, 'keyring.pem')}`, 'info', bundle]);
    expect(info.stdout).toMatch(/Compatible:\s+'memu-os-qemu-amd64'/);
  });

  it('refuses a --rauc-keyring that is not a CA before building anything, saying what to pass', async () => {
    const pki = developmentRaucPkiDir(TEST_CACHE_DIR);
    const r = await runMemu(['--json', 'build', 'qemu-amd64', '--out', join(work, 'bad-keyring'), '--rauc-keyring', join(pki, 'signing.cert.pem')]);
    expect(r.code).toBe(2);
    expect(commandResult(r)).toMatchObject({
      error: expect.stringMatching(/holds "O=Memu development, CN=Memu development release signing", which is not a CA certificate/),
      hint: expect.stringContaining('memu keygen --rauc DIR'),
    });
    expect(r.stderr).not.toContain('"stage":"rootfs"');
    expect(await readdir(join(work, 'bad-keyring')).catch(() => [])).toEqual([]);
  });

  it('ships root B and unused space as holes: the bmap maps nothing of root B and a fraction of the image', async () => {
    const bmap = await readFile(a.bmap, 'utf8');
    const blockSize = Number(/<BlockSize>\s*(\d+)/.exec(bmap)![1]);
    const rootB = part('root-b');
    const ranges = [...bmap.matchAll(/<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*<\/Range>/g)].map((m) => [Number(m[1]) * blockSize, (Number(m[2] ?? m[1]) + 1) * blockSize]);
    expect(ranges.length).toBeGreaterThan(0);
    for (const [start = 0, end = 0] of ranges) expect(end <= rootB.startBytes || start >= rootB.startBytes + rootB.sizeBytes).toBe(true);
    expect(manifest.sizes.mappedBytes).toBeLessThan(manifest.sizes.imageBytes / 3);
    expect(manifest.sizes.zstBytes).toBeLessThan(manifest.sizes.mappedBytes);
  });

  it('the .zst records the image size in its frame header, so a flasher can check it before writing', async () => {
    expect(await declaredUncompressedSize(a.zst, 'zstd')).toBe(manifest.sizes.imageBytes);
    expect(await sh('zstd', ['-lv', a.zst])).toContain(`(${manifest.sizes.imageBytes} B)`);
  });

  it('`memu verify` passes, and fails naming the file after one byte of any artifact changes', async () => {
    const ok = await runMemu(['--json', 'verify', join(work, 'a')]);
    expect(ok.code).toBe(0);
    expect(commandResult<{ checked: string[] }>(ok).checked).toHaveLength(3);
    const copy = join(work, 'verify-copy');
    await exec('cp', ['-a', '--sparse=always', join(work, 'a'), copy]);
    const names = (await readdir(copy)).filter((n) => !n.startsWith('.'));
    expect(names.sort()).toEqual(['manifest.json', 'manifest.json.sig', 'memu-qemu-amd64-0.1.0.bmap', 'memu-qemu-amd64-0.1.0.img', 'memu-qemu-amd64-0.1.0.img.zst']);
    for (const name of names) {
      const file = join(copy, name);
      const fd = await open(file, 'r+');
      const size = (await fd.stat()).size;
      const at = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await fd.read(byte, 0, 1, at);
      await fd.write(Buffer.from([byte[0]! ^ 0x01]), 0, 1, at);
      const bad = await runMemu(['--json', 'verify', copy]);
      await fd.write(byte, 0, 1, at);
      await fd.close();
      expect(bad.code, `verify after changing ${name}`).toBe(4);
      const problems = commandResult<{ problems: { file: string }[] }>(bad).problems;
      expect(problems.length).toBeGreaterThan(0);
      if (!name.startsWith('manifest')) expect(problems.map((p) => p.file)).toEqual([name]);
    }
    expect((await runMemu(['verify', copy])).code).toBe(0);
  });

  it('an overlay-only change reuses the cached root filesystem and lands in the image', async () => {
    const overlay = join(work, 'overlay');
    await mkdir(join(overlay, 'etc/memu'), { recursive: true });
    await writeFile(join(overlay, 'etc/memu/factory-note'), 'station 7\n');
    const c = await buildQemuImage(join(work, 'c'), ['--overlay', overlay]);
    expect(c.rootfsCacheHit).toBe(true);
    const cManifest = JSON.parse(await readFile(c.manifest, 'utf8')) as ImageManifest;
    const root = cManifest.layout.partitions.find((p) => p.role === 'root-a')!;
    expect(await sh('debugfs', ['-R', 'cat /etc/memu/factory-note', `${c.image}?offset=${root.startBytes}`])).toBe('station 7\n');
    expect(cManifest.rootfs.key).toBe(manifest.rootfs.key);
  });

  it('a corrupted root filesystem cache is detected and rebuilt, and the rebuilt image is byte-identical', async () => {
    const cached = join(TEST_CACHE_DIR, 'rootfs', manifest.rootfs.key, 'tree');
    await writeFile(join(cached, 'etc/debian_version'), 'tampered\n');
    const b = await runMemu(['--json', 'build', 'qemu-amd64', '--out', join(work, 'b')]);
    expect(b.code, b.stderr.slice(-3000)).toBe(0);
    expect(b.stderr).toContain('does not match its recorded digest');
    const out = commandResult<BuildOutput>(b);
    expect(out.rootfsCacheHit).toBe(false);
    await exec('cmp', [a.image, out.image]);
    expect(await readFile(out.manifest, 'utf8')).toBe(await readFile(a.manifest, 'utf8'));
    await exec('cmp', [a.zst, out.zst]);
  });
});
