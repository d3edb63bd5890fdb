import { readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { isNotFound } from '../../shared/errors.ts';

/**
 * node-sqlite3-wasm's file system VFS locks a database by creating the directory
 * `<file>.lock` (mkdir is atomic) and unlocks by removing it; a process killed while it
 * holds the lock leaves the directory behind, and every later open answers "database is
 * locked". memu.db is held for the agent's whole life (locking_mode=EXCLUSIVE, for WAL),
 * so every crash or power cut would leave it so. Beside the lock we keep who holds it:
 * the boot, the process ID and that process's start time (which tell a live holder from
 * a reused PID), and a lock whose holder is gone is removed before opening.
 */
interface LockHolder {
  bootId: string;
  pid: number;
  startTime: string;
}

export function lockPaths(dbPath: string) {
  return { lockDir: `${dbPath}.lock`, holder: `${dbPath}.lock-holder` };
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A process's start time in clock ticks since boot (field 22 of /proc/PID/stat); undefined when it does not exist. */
function processStartTime(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function currentHolder(pid = process.pid): LockHolder {
  return { bootId: readText('/proc/sys/kernel/random/boot_id')?.trim() ?? 'unknown', pid, startTime: processStartTime(pid) ?? 'unknown' };
}

function isAlive(holder: LockHolder): boolean {
  const now = currentHolder(holder.pid);
  return now.bootId === holder.bootId && now.startTime === holder.startTime && holder.startTime !== 'unknown';
}

/**
 * Before opening: removes `<file>.lock` when the process that took it has ended (or its
 * record is missing or unreadable: it was killed before it could write one); refuses
 * when that process still runs, this one included.
 */
export function clearStaleLock(dbPath: string, log: Logger): void {
  const { lockDir, holder: holderPath } = lockPaths(dbPath);
  try {
    statSync(lockDir);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  let holder: LockHolder | undefined;
  try {
    holder = JSON.parse(readText(holderPath) ?? 'null') as LockHolder | undefined;
  } catch {
    holder = undefined;
  }
  if (holder && isAlive(holder)) {
    throw new Error(`${dbPath} is in use by process ${holder.pid}${holder.pid === process.pid ? ' (this one)' : ''}: the agent opens it once; close that first`);
  }
  rmdirSync(lockDir);
  log.warn({ path: dbPath, heldBy: holder?.pid ?? 'unknown' }, 'removed the lock a stopped process left on memu.db');
}

/** After the connection took its lock: records this process as the holder. */
export function recordLockHolder(dbPath: string): void {
  const path = lockPaths(dbPath).holder;
  // Under a temporary name first, so another process never reads half a record.
  writeFileSync(`${path}.tmp-${process.pid}`, `${JSON.stringify(currentHolder())}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp-${process.pid}`, path);
}

/** After the connection closed (which removed the lock): removes the record. */
export function removeLockHolder(dbPath: string): void {
  try {
    unlinkSync(lockPaths(dbPath).holder);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
