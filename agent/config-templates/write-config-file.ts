import { readFile, stat } from 'node:fs/promises';
import type { FileOwner } from '../../shared/files/durable-files.ts';
import { isNotFound } from '../../shared/errors.ts';


/** True when `path` already holds exactly `data` with this mode (and owner, as root). */
export async function fileIsCurrent(path: string, data: string | Buffer, mode: number, owner?: FileOwner): Promise<boolean> {
  try {
    const [info, current] = await Promise.all([stat(path), readFile(path)]);
    if ((info.mode & 0o7777) !== mode) return false;
    if (owner && process.getuid?.() === 0 && (info.uid !== owner.uid || info.gid !== owner.gid)) return false;
    return current.equals(Buffer.isBuffer(data) ? data : Buffer.from(data));
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
