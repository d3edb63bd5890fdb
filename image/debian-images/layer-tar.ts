import { readFile } from 'node:fs/promises';

/**
 * Reproducible tar archives for image layers. Every header byte is decided here rather
 * than by the host's tar: entries in path order (a directory before what it holds), the
 * given owners as numbers with no user or group names, one modification time for all,
 * no access or change times, no device numbers. POSIX ustar, with a pax extended header
 * only for a path or link target ustar cannot hold. The same entries give the same bytes
 * on any host, whatever order they come in and whatever times the files had on disk.
 */

interface EntryBase {
  /** Relative to the layer's root, no leading `/` or `./`: `etc/passwd`. */
  path: string;
  uid: number;
  gid: number;
}

export type TarEntry =
  | (EntryBase & { type: 'directory'; mode: number })
  | (EntryBase & { type: 'file'; mode: number; content: Buffer | { file: string } })
  | (EntryBase & { type: 'symlink'; target: string })
  /** A second name for a file earlier in the archive (`target`, a layer path). */
  | (EntryBase & { type: 'hardlink'; mode: number; target: string });

const BLOCK = 512;

/** Path order: component by component, bytewise, so a directory's contents follow it directly. */
export function comparePaths(a: string, b: string): number {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = Buffer.compare(Buffer.from(x[i]!), Buffer.from(y[i]!));
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** The whole archive, ending in the two zero blocks. */
export async function writeTar(entries: readonly TarEntry[], mtime: number): Promise<Buffer> {
  const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
  const chunks: Buffer[] = [];
  const files = new Set<string>();
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i]!;
    if (!e.path || e.path.startsWith('/') || e.path.endsWith('/') || e.path.split('/').some((c) => c === '' || c === '.' || c === '..')) {
      throw new Error(`bad layer path "${e.path}": relative, normalized, without a trailing slash`);
    }
    if (i > 0 && sorted[i - 1]!.path === e.path) throw new Error(`${e.path} is in the layer twice`);
    if (e.type === 'hardlink' && !files.has(e.target)) throw new Error(`${e.path} links to ${e.target}, which is not a file earlier in the layer`);
    if (e.type === 'file') files.add(e.path);
    const content = e.type === 'file' ? (Buffer.isBuffer(e.content) ? e.content : await readFile(e.content.file)) : Buffer.alloc(0);
    chunks.push(...entryBlocks(e, content, mtime));
  }
  chunks.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(chunks);
}

const TYPE_FLAG = { file: '0', hardlink: '1', symlink: '2', directory: '5' } as const;

function entryBlocks(e: TarEntry, content: Buffer, mtime: number): Buffer[] {
  const name = e.type === 'directory' ? `${e.path}/` : e.path;
  const target = e.type === 'symlink' || e.type === 'hardlink' ? e.target : '';
  const mode = e.type === 'symlink' ? 0o777 : e.mode;
  const pax: [string, string][] = [];
  const split = splitUstarName(name);
  if (!split) pax.push(['path', name]);
  if (!fitsUstar(target, 100)) pax.push(['linkpath', target]);
  if (content.length > 0o77777777777) throw new Error(`${e.path} is too large for a layer (${content.length} bytes)`);
  const blocks: Buffer[] = [];
  if (pax.length > 0) {
    const records = Buffer.from(pax.map(([k, v]) => paxRecord(k, v)).join(''));
    // The pax header's own name only needs to be stable: it is never extracted.
    const paxName = `PaxHeaders/${Buffer.from(e.path).subarray(-80).toString('latin1').replace(/[^A-Za-z0-9._-]/g, '_')}`;
    blocks.push(header({ name: paxName, prefix: '', mode: 0o644, uid: 0, gid: 0, size: records.length, mtime, type: 'x', linkname: '' }), padded(records));
  }
  blocks.push(
    header({
      name: split?.name ?? Buffer.from(name).subarray(-100).toString('latin1').replace(/[^ -~]/g, '_'),
      prefix: split?.prefix ?? '',
      mode,
      uid: e.uid,
      gid: e.gid,
      size: content.length,
      mtime,
      type: TYPE_FLAG[e.type],
      linkname: fitsUstar(target, 100) ? target : '',
    }),
  );
  if (content.length > 0) blocks.push(padded(content));
  return blocks;
}

const isAscii = (s: string) => /^[\x20-\x7e]*$/.test(s);
const fitsUstar = (s: string, max: number) => isAscii(s) && s.length <= max;

/** ustar's name (100 bytes) and prefix (155 bytes), split at a `/`, or undefined when it cannot hold the path. */
function splitUstarName(name: string): { name: string; prefix: string } | undefined {
  if (!isAscii(name)) return undefined;
  if (name.length <= 100) return { name, prefix: '' };
  // The rightmost `/` whose prefix fits leaves the shortest name part: if that is too long, every other is.
  for (let i = Math.min(name.length - 2, 155); i > 0; i--) {
    if (name[i] !== '/') continue;
    const rest = name.slice(i + 1);
    return rest.length <= 100 ? { prefix: name.slice(0, i), name: rest } : undefined;
  }
  return undefined;
}

/** `LEN key=value\n`, where LEN counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = Buffer.byteLength(body);
  let len = bodyBytes + String(bodyBytes).length;
  if (String(len).length !== String(bodyBytes).length) len = bodyBytes + String(len).length;
  return `${len}${body}`;
}

function padded(data: Buffer): Buffer {
  const rem = data.length % BLOCK;
  return rem === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rem)]);
}

function header(h: { name: string; prefix: string; mode: number; uid: number; gid: number; size: number; mtime: number; type: string; linkname: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  const text = (offset: number, length: number, value: string) => b.write(value, offset, length, 'latin1');
  const octal = (offset: number, length: number, value: number) => text(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  text(0, 100, h.name);
  octal(100, 8, h.mode);
  octal(108, 8, h.uid);
  octal(116, 8, h.gid);
  octal(124, 12, h.size);
  octal(136, 12, h.mtime);
  text(148, 8, '        ');
  text(156, 1, h.type);
  text(157, 100, h.linkname);
  text(257, 6, 'ustar\0');
  text(263, 2, '00');
  octal(329, 8, 0);
  octal(337, 8, 0);
  text(345, 155, h.prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  text(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return b;
}
