import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openFamilyDb } from '../../../../agent/family-db/family-db.ts';
import { lockPaths } from '../../../../agent/family-db/stale-lock.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

/**
 * node-sqlite3-wasm locks with a `<file>.lock` directory, which a killed agent leaves
 * behind; the holder record beside it tells a dead holder from a live one. The crash
 * test (test/integration/agent/family-db) leaves real ones with SIGKILL.
 */
const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const startTimeOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};

async function leftLock(holder?: object): Promise<string> {
  const path = join(await tempDir('memu-family-db-'), 'memu.db');
  openFamilyDb(path, pino({ level: 'silent' })).close();
  const { lockDir, holder: holderPath } = lockPaths(path);
  mkdirSync(lockDir);
  if (holder) writeFileSync(holderPath, JSON.stringify(holder));
  return path;
}

function openLogged(path: string) {
  const lines: { msg: string; heldBy?: unknown }[] = [];
  const db = openFamilyDb(path, pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l)) }));
  db.close();
  return lines;
}

describe('a lock left on memu.db', () => {
  it('by a process of an earlier boot is removed, with a warning', async () => {
    const path = await leftLock({ bootId: 'an-earlier-boot', pid: process.pid, startTime: startTimeOf(process.pid) });
    expect(openLogged(path)).toEqual([expect.objectContaining({ msg: 'removed the lock a stopped process left on memu.db', heldBy: process.pid })]);
  });

  it('by a process whose PID now belongs to another process is removed', async () => {
    const path = await leftLock({ bootId, pid: process.pid, startTime: '1' });
    expect(openLogged(path)).toHaveLength(1);
  });

  it('by a process killed before it recorded itself is removed', async () => {
    const path = await leftLock();
    expect(openLogged(path)).toEqual([expect.objectContaining({ heldBy: 'unknown' })]);
  });

  it('by a process that still runs is kept, and the open refused naming it', async () => {
    const path = await leftLock({ bootId, pid: 1, startTime: startTimeOf(1) });
    expect(() => openLogged(path)).toThrow(`${path} is in use by process 1: the agent opens it once`);
    expect(existsSync(lockPaths(path).lockDir)).toBe(true);
  });

  it('by this very process (memu.db is still open) is kept, and the second open refused', async () => {
    const path = join(await tempDir('memu-family-db-'), 'memu.db');
    const db = openFamilyDb(path, pino({ level: 'silent' }));
    try {
      expect(() => openFamilyDb(path, pino({ level: 'silent' }))).toThrow(`${path} is in use by process ${process.pid} (this one)`);
      expect(db.schemaVersion()).toBe(1);
    } finally {
      db.close();
    }
  });
});
