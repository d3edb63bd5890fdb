import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_TOOLS } from '../../../../image/host/host-tools.ts';
import type { ImageManifest } from '../../../../image/release/image-manifest.ts';
import { buildKilledAt, buildQemuImage, commandResult, runMemu, REPO_ROOT } from '../../../helpers/memu-build.ts';

const exec = promisify(execFile);

/** Nothing of a failed build may be left in its output directory. */
async function leftovers(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

describe('memu build: bad input and hostile hosts', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp('/var/tmp/memu-build-errors-');
  });
  afterAll(async () => {
    await exec('umount', [join(work, 'small')]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('an unknown profile is a usage error that names the known profiles', async () => {
    const r = await runMemu(['--json', 'build', 'pi9', '--out', join(work, 'x')]);
    expect(r.code).toBe(2);
    expect(commandResult(r).error).toBe('unknown hardware profile "pi9"; known profiles: nuc, pi5, qemu-amd64, qemu-arm64');
    expect(await leftovers(join(work, 'x'))).toEqual([]);
  });

  it('a missing host tool fails at once, naming the tool, its package and scripts/setup-host', async () => {
    const bin = join(work, 'bin');
    await mkdir(bin);
    for (const tool of Object.keys(HOST_TOOLS)) {
      if (tool === 'bmaptool') continue;
      const found = await exec('sh', ['-c', `command -v ${tool}`]).then((r) => r.stdout.trim(), () => '');
      if (found) await symlink(found, join(bin, tool));
    }
    const r = await runMemu(['build', 'qemu-amd64', '--out', join(work, 'y')], { env: { PATH: bin } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('missing host tool: bmaptool (Debian package bmap-tools)');
    expect(r.stderr).toContain('scripts/setup-host');
    expect(await leftovers(join(work, 'y'))).toEqual([]);
  });

  it('too little free disk space is refused before anything is written', async () => {
    const small = join(work, 'small');
    await mkdir(small);
    await exec('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', small]);
    const r = await runMemu(['build', 'qemu-amd64', '--out', join(small, 'out')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not enough free disk space in .*small\/out for the image and its artifacts: [\d.]+ MiB free, about 4\.0 GiB needed/);
    expect(await leftovers(small)).toEqual([]);
  });

  it('an unreadable signing key is a clear error and writes nothing', async () => {
    const r = await runMemu(['build', 'qemu-amd64', '--out', join(work, 'z'), '--key', join(work, 'nope.key')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot read signing key .*nope\.key: ENOENT/);
    expect(r.stderr).toContain('memu keygen');
    expect(await leftovers(join(work, 'z'))).toEqual([]);
  });

  it('a build killed half-way leaves no artifact, and the next build clears its work directory', async () => {
    const out = join(work, 'killed');
    const child = execFile(process.execPath, ['bin/memu.mjs', '--json', 'build', 'qemu-amd64', '--out', out], {
      cwd: REPO_ROOT,
      env: { ...process.env, MEMU_CACHE_DIR: process.env.MEMU_TEST_CACHE_DIR ?? '/var/tmp/memu-test-cache' },
    });
    // With --json, progress lines go to stdout; a line can arrive split across chunks.
    let stdout = '';
    const killed = await new Promise<boolean>((resolve) => {
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('"stage":"filesystems"') && child.kill('SIGKILL')) resolve(true);
      });
      child.on('exit', () => resolve(false));
    });
    expect(killed, `the build ended before its filesystems stage:\n${stdout.slice(-2000)}`).toBe(true);
    await new Promise((r) => child.on('close', r));
    const left = await leftovers(out);
    expect(left.filter((n) => !n.startsWith('.memu-work-'))).toEqual([]);
    expect(left.some((n) => n.startsWith('.memu-work-'))).toBe(true);
    const again = await runMemu(['build', 'qemu-amd64', '--out', out]);
    expect(again.code, again.stderr.slice(-2000)).toBe(0);
    expect((await leftovers(out)).filter((n) => n.startsWith('.memu-work-'))).toEqual([]);
  });

  it('a build killed while it publishes its artifacts leaves an incomplete set that memu verify names, never a mix that passes, and the next build replaces it', async () => {
    const out = join(work, 'publish');
    // The old set: complete, same names as the new one, different contents.
    const overlay = join(work, 'old-overlay');
    await mkdir(join(overlay, 'etc/memu'), { recursive: true });
    await writeFile(join(overlay, 'etc/memu/old-set'), 'old\n');
    const old = await buildQemuImage(out, ['--overlay', overlay]);
    const oldManifest = JSON.parse(await readFile(old.manifest, 'utf8')) as ImageManifest;
    // An artifact of an earlier version, which no manifest names any more.
    await copyFile(old.bmap, join(out, 'memu-qemu-amd64-0.0.9.bmap'));
    const files = async () => (await leftovers(out)).filter((n) => !n.startsWith('.memu-work-')).sort();
    const verify = async () => {
      const r = await runMemu(['--json', 'verify', out]);
      return { code: r.code, problems: commandResult<{ problems: { file: string; problem: string }[] }>(r).problems };
    };
    const set = ['memu-qemu-amd64-0.1.0.bmap', 'memu-qemu-amd64-0.1.0.img', 'memu-qemu-amd64-0.1.0.img.zst'];

    // Old set withdrawn: its artifacts are still there, but no longer a set; the orphan is gone.
    const withdrawn = await buildKilledAt('old-set-withdrawn', out);
    expect(withdrawn.signal, withdrawn.stderr.slice(-2000)).toBe('SIGKILL');
    expect(await files()).toEqual(set);
    let v = await verify();
    expect(v.code).toBe(4);
    expect(v.problems).toEqual([{ file: 'manifest.json', problem: expect.stringMatching(/holds no complete image set \(it holds memu-qemu-amd64-0\.1\.0\.bmap, memu-qemu-amd64-0\.1\.0\.img, memu-qemu-amd64-0\.1\.0\.img\.zst without manifest\.json\).*run `memu build` again/) }]);

    // A new image beside the old .zst and .bmap: a mix, which verify must not pass.
    const mixed = await buildKilledAt('image-moved', out);
    expect(mixed.signal).toBe('SIGKILL');
    expect(await files()).toEqual(set);
    const { stdout: zstNow } = await exec('sha256sum', [join(out, set[2]!)]);
    expect(zstNow.split(' ')[0]).toBe(oldManifest.artifacts.find((a) => a.role === 'image-zst')!.sha256);
    v = await verify();
    expect(v.code).toBe(4);
    expect(v.problems.map((p) => p.file)).toEqual(['manifest.json']);

    // The new manifest is written, its signature is not: still incomplete.
    const unsigned = await buildKilledAt('manifest-written', out);
    expect(unsigned.signal).toBe('SIGKILL');
    expect(await files()).toEqual(['manifest.json', ...set].sort());
    v = await verify();
    expect(v.code).toBe(4);
    expect(v.problems).toEqual([{ file: 'manifest.json.sig', problem: expect.stringMatching(/holds no complete image set/) }]);

    const again = await runMemu(['build', 'qemu-amd64', '--out', out]);
    expect(again.code, again.stderr.slice(-2000)).toBe(0);
    expect((await leftovers(out)).sort()).toEqual(['manifest.json', 'manifest.json.sig', ...set].sort());
    expect((await verify()).code).toBe(0);
  });
});

