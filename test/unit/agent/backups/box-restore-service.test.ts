import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createBoxRestoreService, type BoxRestoreRecord } from '../../../../agent/backups/index.ts';
import { createMaintenanceLock } from '../../../../agent/maintenance/index.ts';
import { writeJsonDurably } from '../../../../shared/files/durable-files.ts';
import type { StackHold } from '../../../../agent/stack/index.ts';

// After a power cut in the middle of a restore onto a new box: what the next start does.
const log = pino({ level: 'silent' });
let dataDir: string;
let holds: (StackHold | undefined)[];
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'memu-box-restore-'));
  holds = [];
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function service(setupFinished: boolean) {
  return createBoxRestoreService(
    {
      dataDir,
      engine: { openWithPassword: async () => Promise.reject(new Error('not opened in these tests')), passwordFile: join(dataDir, 'secrets', 'backup-repository-password') },
      lock: createMaintenanceLock(),
      // A FAKE stack: records the holds.
      stack: { setHold: async (hold) => void holds.push(hold) },
      familyDb: { replace: async (write) => write(join(dataDir, 'agent', 'memu.db')) },
      databases: async () => undefined,
      setupFinished: () => setupFinished,
      driveRoots: { byLabelDir: join(dataDir, 'by-label'), mountPoint: join(dataDir, 'backup-drive') },
    },
    log,
  );
}

const record = (stage: BoxRestoreRecord['stage']): BoxRestoreRecord => ({ runId: '20261205T185000Z-3fa1c2', source: 'Backup drive: memu-backups', stage, startedAt: '2026-12-06T01:00:00.000Z' });
const settled = () => new Promise((r) => setTimeout(r, 50));

describe('a restore onto a new box stopped by a power cut', () => {
  it('once memu.db was in, the next start lifts the hold and records the restore as done', async () => {
    await writeJsonDurably(join(dataDir, 'agent', 'box-restore.json'), record('family-db'));
    const restore = service(true);
    await restore.start();
    await settled();
    expect(holds).toEqual([undefined]);
    expect(JSON.parse(await readFile(join(dataDir, 'agent', 'box-restore.json'), 'utf8'))).toMatchObject({ stage: 'done', finishedAt: expect.any(String) });
    expect(await restore.state()).toMatchObject({ state: 'done' });
  });

  it('before memu.db was in, the apps stay held and the wizard offers the restore again, saying why', async () => {
    await writeJsonDurably(join(dataDir, 'agent', 'box-restore.json'), record('databases'));
    const restore = service(false);
    await restore.start();
    await settled();
    expect(holds).toEqual([]);
    expect(await restore.state()).toEqual({ state: 'failed', source: 'Backup drive: memu-backups', stage: 'databases', message: 'The restore was stopped by a restart of Memu before it finished.' });
  });

  it('refuses what is not a recovery kit password, and a drive that is not plugged in, before anything starts', async () => {
    const restore = service(false);
    await expect(restore.begin({ kind: 'usb-drive' }, 'hello')).rejects.toThrow(/not a recovery kit password/);
    await expect(restore.begin({ kind: 'usb-drive' }, '7kq2m-4xd9p-aaaaa-bbbbb-ccccc-ddddd')).rejects.toThrow('No backup drive is plugged in: plug in the drive labelled MEMU-BACKUP and try again.');
    await expect(restore.begin({ kind: 'rest', url: 'http://no-scheme' }, '7KQ2M-4XD9P-AAAAA-BBBBB-CCCCC-DDDDD')).rejects.toThrow(/^That backup address cannot be used: url: /);
    expect(await restore.state()).toEqual({ state: 'idle' });
  });
});
