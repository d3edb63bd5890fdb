import { execFile } from 'node:child_process';
import { link, mkdir, mkdtemp, rm, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { comparePaths, writeTar, type TarEntry } from '../../../../image/debian-images/layer-tar.ts';
import { gzipLayer } from '../../../../image/debian-images/oci-image.ts';
import { treeEntries } from '../../../../image/debian-images/root-tree.ts';

const run = promisify(execFile);
const EPOCH = 1767225600;

/** The ustar headers of an archive: name (prefix joined), type, mode, owner, size, mtime, link, and the raw name fields. */
function headers(tar: Buffer) {
  const out: { name: string; type: string; mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; uname: string; gname: string; pax?: string }[] = [];
  let pax: string | undefined;
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (o: number, n: number) => h.subarray(o, o + n).toString('latin1').replace(/\0.*$/s, '');
    const num = (o: number, n: number) => parseInt(str(o, n).trim() || '0', 8);
    const size = num(124, 12);
    const prefix = str(345, 155);
    const entry = { name: prefix ? `${prefix}/${str(0, 100)}` : str(0, 100), type: str(156, 1), mode: num(100, 8), uid: num(108, 8), gid: num(116, 8), size, mtime: num(136, 12), linkname: str(157, 100), uname: str(265, 32), gname: str(297, 32) };
    const data = tar.subarray(off + 512, off + 512 + size).toString('utf8');
    off += 512 + Math.ceil(size / 512) * 512;
    if (entry.type === 'x') {
      pax = data;
      continue;
    }
    out.push({ ...entry, ...(pax ? { pax } : {}) });
    pax = undefined;
  }
  return out;
}

describe('reproducible layer tars', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'memu-layer-tar-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const entries = (): TarEntry[] => [
    { type: 'file', path: 'etc/nginx/nginx.conf', mode: 0o644, uid: 0, gid: 0, content: Buffer.from('daemon off;\n') },
    { type: 'directory', path: 'etc', mode: 0o755, uid: 0, gid: 0 },
    { type: 'directory', path: 'etc/nginx', mode: 0o755, uid: 0, gid: 0 },
    { type: 'directory', path: 'var/lib/valkey', mode: 0o750, uid: 999, gid: 999 },
    { type: 'symlink', path: 'usr/bin/wget', target: 'busybox', uid: 0, gid: 0 },
    { type: 'directory', path: 'etc-x', mode: 0o755, uid: 0, gid: 0 },
  ];

  it('gives the same bytes whatever order the entries come in', async () => {
    const a = await writeTar(entries(), EPOCH);
    const b = await writeTar(entries().reverse(), EPOCH);
    expect(a.equals(b)).toBe(true);
    expect(a.length % 512).toBe(0);
    // Ends with two zero blocks.
    expect(a.subarray(-1024).every((x) => x === 0)).toBe(true);
  });

  it('puts a directory before what it holds, and its contents together', async () => {
    expect(headers(await writeTar(entries(), EPOCH)).map((h) => h.name)).toEqual(['etc/', 'etc/nginx/', 'etc/nginx/nginx.conf', 'etc-x/', 'usr/bin/wget', 'var/lib/valkey/']);
    expect(['b/c', 'a', 'b', 'a/z', 'a-b'].sort(comparePaths)).toEqual(['a', 'a/z', 'a-b', 'b', 'b/c']);
  });

  it('records the given owners as numbers, no names, one time, and modes as given', async () => {
    const hs = headers(await writeTar(entries(), EPOCH));
    for (const h of hs) {
      expect(h.mtime).toBe(EPOCH);
      expect(h.uname).toBe('');
      expect(h.gname).toBe('');
    }
    expect(hs.find((h) => h.name === 'var/lib/valkey/')).toMatchObject({ type: '5', mode: 0o750, uid: 999, gid: 999 });
    expect(hs.find((h) => h.name === 'usr/bin/wget')).toMatchObject({ type: '2', linkname: 'busybox', mode: 0o777 });
    expect(hs.find((h) => h.name === 'etc/nginx/nginx.conf')).toMatchObject({ type: '0', mode: 0o644, size: 12 });
  });

  it('splits long paths into ustar prefix and name, and uses a pax header only when that cannot hold them', async () => {
    const deep = `usr/share/${'d'.repeat(90)}/${'f'.repeat(60)}`;
    const huge = `usr/${'x'.repeat(120)}/${'y'.repeat(120)}`;
    const far = `${'t'.repeat(150)}/target`;
    const hs = headers(
      await writeTar(
        [
          { type: 'file', path: deep, mode: 0o644, uid: 0, gid: 0, content: Buffer.from('a') },
          { type: 'file', path: huge, mode: 0o644, uid: 0, gid: 0, content: Buffer.from('b') },
          { type: 'symlink', path: 'link', target: far, uid: 0, gid: 0 },
        ],
        EPOCH,
      ),
    );
    expect(hs.find((h) => h.name === deep)?.pax).toBeUndefined();
    const long = hs.find((h) => h.pax?.includes(`path=${huge}\n`));
    expect(long).toBeDefined();
    expect(hs.find((h) => h.pax?.includes(`linkpath=${far}\n`))).toBeDefined();
    // Each pax record's length counts the whole record.
    for (const h of hs.filter((x) => x.pax)) {
      for (const record of h.pax!.split(/(?<=\n)/).filter(Boolean)) expect(Number(record.split(' ')[0])).toBe(Buffer.byteLength(record));
    }
  });

  it('is read by GNU tar as written', async () => {
    const tar = await writeTar(
      [...entries(), { type: 'file', path: `opt/${'n'.repeat(200)}`, mode: 0o600, uid: 33, gid: 33, content: Buffer.from('x') }, { type: 'hardlink', path: 'etc/nginx/too', target: 'etc/nginx/nginx.conf', mode: 0o644, uid: 0, gid: 0 }],
      EPOCH,
    );
    await writeFile(join(dir, 'layer.tar'), tar);
    const { stdout } = await run('tar', ['-tv', '--numeric-owner', '--full-time', '-f', join(dir, 'layer.tar')]);
    expect(stdout).toMatch(new RegExp(`^-rw------- 33/33 +1 2026-01-01 00:00:00 opt/n{200}$`, 'm'));
    expect(stdout).toContain('etc/nginx/too link to etc/nginx/nginx.conf');
    expect(stdout).toMatch(/^drwxr-x--- 999\/999 +0 2026-01-01 00:00:00 var\/lib\/valkey\/$/m);
    const extracted = join(dir, 'x');
    await mkdir(extracted);
    await run('tar', ['-xf', join(dir, 'layer.tar'), '-C', extracted]);
  });

  it('refuses a path twice, a hard link to a later or missing file, and a path that is not relative and normalized', async () => {
    await expect(writeTar([...entries(), entries()[0]!], EPOCH)).rejects.toThrow('etc/nginx/nginx.conf is in the layer twice');
    const hardlink = (target: string): TarEntry => ({ type: 'hardlink', path: 'etc/nginx/again', target, mode: 0o644, uid: 0, gid: 0 });
    // A link's data must come first: to a later name, or to a directory, extraction fails.
    await expect(writeTar([...entries(), hardlink('etc/nginx/nginx.conf')], EPOCH)).rejects.toThrow('etc/nginx/again links to etc/nginx/nginx.conf, which is not a file earlier in the layer');
    await expect(writeTar([...entries(), hardlink('etc')], EPOCH)).rejects.toThrow('not a file earlier');
    for (const path of ['/etc', 'etc/', 'etc/../x', './etc', '']) {
      await expect(writeTar([{ type: 'directory', path, mode: 0o755, uid: 0, gid: 0 }], EPOCH)).rejects.toThrow('bad layer path');
    }
  });

  it('reads a tree into entries owned by root, whatever its times and owners on disk, with hard links as links', async () => {
    const root = join(dir, 'root');
    await mkdir(join(root, 'usr/bin'), { recursive: true });
    await writeFile(join(root, 'usr/bin/valkey-check-rdb'), 'binary');
    await chmod(join(root, 'usr/bin/valkey-check-rdb'), 0o755);
    await link(join(root, 'usr/bin/valkey-check-rdb'), join(root, 'usr/bin/valkey-check-aof'));
    await symlink('valkey-check-rdb', join(root, 'usr/bin/valkey-server'));
    await mkdir(join(root, 'tmp'), { mode: 0o1777 });
    await chmod(join(root, 'tmp'), 0o1777);
    const first = await writeTar(await treeEntries(root), EPOCH);
    await utimes(join(root, 'usr/bin/valkey-check-rdb'), 1, 2);
    const second = await writeTar(await treeEntries(root), EPOCH);
    expect(second.equals(first)).toBe(true);
    const hs = headers(first);
    expect(hs.map((h) => `${h.name} ${h.type} ${h.mode.toString(8)} ${h.uid}:${h.gid} ${h.linkname}`.trim())).toEqual([
      'tmp/ 5 1777 0:0',
      'usr/ 5 755 0:0',
      'usr/bin/ 5 755 0:0',
      // The first name in path order holds the data; the later one links to it.
      'usr/bin/valkey-check-aof 0 755 0:0',
      'usr/bin/valkey-check-rdb 1 755 0:0 usr/bin/valkey-check-aof',
      'usr/bin/valkey-server 2 777 0:0 valkey-check-rdb',
    ]);
  });

  it('compresses with a fixed gzip header: no name, no time', async () => {
    const tar = await writeTar(entries(), EPOCH);
    const a = await gzipLayer(tar);
    const b = await gzipLayer(tar);
    expect(a.digest).toBe(b.digest);
    expect(a.bytes.subarray(0, 3)).toEqual(Buffer.from([0x1f, 0x8b, 8]));
    expect(a.bytes[3]! & 0x08).toBe(0); // FNAME not set
    expect(a.bytes.readUInt32LE(4)).toBe(0); // MTIME 0
    expect(a.tarSize).toBe(tar.length);
    expect(a.diffId).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
