import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_TOOLS } from '../../../../image/host/host-tools.ts';
import { runMemu, REPO_ROOT } from '../../../helpers/memu-build.ts';

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
    const r = await runMemu(['build', 'pi9', '--out', join(work, 'x')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown hardware profile "pi9"; known profiles: nuc, qemu-amd64/);
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
    await new Promise<void>((resolve) => {
      child.stderr!.on('data', (d: Buffer) => {
        if (d.toString().includes('"stage":"filesystems"')) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.on('close', r));
    const left = await leftovers(out);
    expect(left.filter((n) => !n.startsWith('.memu-work-'))).toEqual([]);
    expect(left.some((n) => n.startsWith('.memu-work-'))).toBe(true);
    const again = await runMemu(['build', 'qemu-amd64', '--out', out]);
    expect(again.code, again.stderr.slice(-2000)).toBe(0);
    expect((await leftovers(out)).filter((n) => n.startsWith('.memu-work-'))).toEqual([]);
  });
});
