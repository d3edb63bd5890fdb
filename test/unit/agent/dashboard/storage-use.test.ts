import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createStorageUse, measureDataDirectories, parseDu, type DirectoryUse } from '../../../../agent/dashboard/storage-use.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

const log = pino({ level: 'silent' });

describe('storage use', () => {
  it('reads du -s -B1, largest first, with the names people use', () => {
    expect(parseDu('4096\t/var/lib/memu/redis\n123456789\t/var/lib/memu/photos\n8192\t/var/lib/memu/something else\ndu: cannot read x\n')).toEqual([
      { name: 'photos', label: 'Photos and videos (Memu Memories)', bytes: 123456789 },
      { name: 'something else', label: 'something else', bytes: 8192 },
      { name: 'redis', label: 'Cache', bytes: 4096 },
    ]);
  });

  it('measures each top-level directory of the data partition with du', async () => {
    const data = await tempDir('memu-storage-');
    await mkdir(join(data, 'photos'));
    await writeFile(join(data, 'photos', 'a.jpg'), Buffer.alloc(200_000, 1));
    await mkdir(join(data, 'lost+found'));
    await writeFile(join(data, 'loose-file'), 'x');
    const measured = await measureDataDirectories(data);
    expect(measured.map((d) => d.name)).toEqual(['photos']);
    expect(measured[0]!.bytes).toBeGreaterThanOrEqual(200_000);
  });

  it('never waits for a measurement: the first page says measuring, later ones the cached sizes until they are stale', async () => {
    let t = 1_000;
    const runs: ((dirs: DirectoryUse[]) => void)[] = [];
    const use = createStorageUse({ dataDir: '/data', log, now: () => t, maxAgeMs: 60_000, measure: () => new Promise((resolve) => runs.push(resolve)) });
    expect(use.current()).toEqual({ state: 'measuring', since: 1_000 });
    expect(use.current().state).toBe('measuring');
    expect(runs).toHaveLength(1); // one du at a time
    runs[0]!([{ name: 'photos', label: 'Photos', bytes: 5 }]);
    await new Promise((r) => setImmediate(r));
    t = 30_000;
    expect(use.current()).toEqual({ state: 'measured', at: 1_000, directories: [{ name: 'photos', label: 'Photos', bytes: 5 }], refreshing: false });
    expect(runs).toHaveLength(1);
    t = 61_000;
    expect(use.current()).toMatchObject({ state: 'measured', at: 1_000, refreshing: true }); // stale: the old sizes while du runs again
    expect(runs).toHaveLength(2);
  });

  it('says when measuring failed', async () => {
    const use = createStorageUse({ dataDir: '/data', log, now: () => 5, measure: async () => Promise.reject(new Error('du: cannot access')) });
    use.current();
    await new Promise((r) => setImmediate(r));
    expect(use.current()).toEqual({ state: 'failed', at: 5, error: 'du: cannot access' });
  });
});
