import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createDiskSpaceCheck,
  DEFAULT_DISK_SPACE_THRESHOLDS,
  evaluateDiskSpace,
  measureDockerDataRoot,
  readFilesystemSpace,
  readJournalBytes,
  type FilesystemSpace,
} from '../../../../../agent/health/checks/disk-space.ts';
import type { CheckResult } from '../../../../../agent/health/checks/check.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const fixtureDir = new URL('../../../../fixtures/health/disk-space/', import.meta.url);

/** A recorded or written statfs result, as the reader turns it into facts. */
function statfsFixture(name: string, mountPoint: string): FilesystemSpace {
  const s = JSON.parse(readFileSync(new URL(name, fixtureDir), 'utf8')) as { bsize: number; blocks: number; bavail: number; files: number; ffree: number };
  return { mountPoint, sizeBytes: s.blocks * s.bsize, availBytes: s.bavail * s.bsize, files: s.files, filesFree: s.ffree };
}

const GB = 1e9;
const MB = 1e6;
const space = (mountPoint: string, sizeBytes: number, availBytes: number, files = 1_000_000, filesFree = 900_000): FilesystemSpace => ({ mountPoint, sizeBytes, availBytes, files, filesFree });
const data = (size: number, avail: number, files?: number, filesFree?: number) => space('/var/lib/memu', size, avail, files, filesFree);
const root = (size: number, avail: number, files?: number, filesFree?: number) => space('/', size, avail, files, filesFree);
const byName = (results: CheckResult[], name: string) => results.find((r) => r.check === name);
const statusOf = (results: CheckResult[], name: string) => byName(results, name)?.status;

describe('evaluateDiskSpace, from recorded and written statfs results', () => {
  it('says how much is free in words and numbers; a healthy host disk is ok', () => {
    const rootFs = statfsFixture('debian-host-root-statfs.json', '/');
    const [r] = evaluateDiskSpace({ root: rootFs });
    expect(r).toMatchObject({ check: 'root-disk-space', status: 'ok', reason: 'The system disk has 76 GB free of 271 GB (28 %).' });
    expect(r!.action).toBeUndefined();
    expect(r!.metrics).toEqual([
      { name: 'node_filesystem_avail_bytes', help: expect.any(String), type: 'gauge', labels: { mountpoint: '/' }, value: 18574566 * 4096 },
      { name: 'node_filesystem_size_bytes', help: expect.any(String), type: 'gauge', labels: { mountpoint: '/' }, value: 66053021 * 4096 },
      { name: 'node_filesystem_files_free', help: expect.any(String), type: 'gauge', labels: { mountpoint: '/' }, value: 16292359 },
      { name: 'node_filesystem_files', help: expect.any(String), type: 'gauge', labels: { mountpoint: '/' }, value: 16777216 },
    ]);
  });

  it('finds a 30 GB data disk with 1.2 GB left unhealthy, and says what to do', () => {
    const [r] = evaluateDiskSpace({ data: statfsFixture('data-30gb-1.2gb-free-statfs.json', '/var/lib/memu') });
    expect(r).toMatchObject({
      check: 'data-disk-space',
      status: 'unhealthy',
      reason: 'The data disk has 1.2 GB free of 30 GB (4 %).',
      action: "New photos and messages cannot be saved for long: delete old videos or move them off the box now; the box is clearing Docker's unused files.",
    });
  });

  it('leaves a 2 TB data disk at 5 % alone: 100 GB is plenty', () => {
    const [r] = evaluateDiskSpace({ data: statfsFixture('data-2tb-5pct-free-statfs.json', '/var/lib/memu') });
    expect(r).toMatchObject({ status: 'ok', reason: 'The data disk has 100 GB free of 2 TB (5 %).' });
  });

  it('finds a data disk out of inodes unhealthy though bytes are free', () => {
    const [r] = evaluateDiskSpace({ data: statfsFixture('data-inodes-nearly-exhausted-statfs.json', '/var/lib/memu') });
    expect(r).toMatchObject({ status: 'unhealthy', reason: 'The data disk has 10 GB free of 30 GB (33 %). It has room for only 9,000 more files (under 1 % of its file slots).' });
  });

  it('finds a 1.5 GiB root with 60 MB left unhealthy and warns the box may not start', () => {
    const [r] = evaluateDiskSpace({ root: statfsFixture('root-1.5gib-60mb-free-statfs.json', '/') });
    expect(r).toMatchObject({
      check: 'root-disk-space',
      status: 'unhealthy',
      reason: 'The system disk has 60 MB free of 1.6 GB (4 %).',
      action: 'The box may not start again if this disk fills: it is clearing old logs; do not switch it off, and ask for help if this message stays.',
    });
  });
});

describe('evaluateDiskSpace thresholds, each on both sides', () => {
  const cases: [string, FilesystemSpace, 'data-disk-space' | 'root-disk-space', string][] = [
    // data degraded: under 10 % and under 20 GB
    ['data share just under 10 %', data(100 * GB, 9.9 * GB), 'data-disk-space', 'degraded'],
    ['data share just over 10 %', data(100 * GB, 10.1 * GB), 'data-disk-space', 'ok'],
    ['data bytes just under 20 GB on 1 TB', data(1000 * GB, 19.9 * GB), 'data-disk-space', 'degraded'],
    ['data bytes just over 20 GB on 1 TB', data(1000 * GB, 20.1 * GB), 'data-disk-space', 'ok'],
    // data unhealthy: under 5 % and under 5 GB
    ['data share just under 5 %', data(50 * GB, 2.4 * GB), 'data-disk-space', 'unhealthy'],
    ['data share just over 5 %', data(50 * GB, 2.6 * GB), 'data-disk-space', 'degraded'],
    ['data bytes just under 5 GB on 1 TB', data(1000 * GB, 4.9 * GB), 'data-disk-space', 'unhealthy'],
    ['data bytes just over 5 GB on 1 TB', data(1000 * GB, 5.1 * GB), 'data-disk-space', 'degraded'],
    // root degraded: under 15 % and under 768 MB
    ['root share just under 15 %', root(4 * GB, 590 * MB), 'root-disk-space', 'degraded'],
    ['root share just over 15 %', root(4 * GB, 610 * MB), 'root-disk-space', 'ok'],
    ['root bytes just under 768 MB', root(10 * GB, 760 * MB), 'root-disk-space', 'degraded'],
    ['root bytes just over 768 MB', root(10 * GB, 780 * MB), 'root-disk-space', 'ok'],
    // root unhealthy: under 5 % and under 256 MB
    ['root share just under 5 %', root(4 * GB, 190 * MB), 'root-disk-space', 'unhealthy'],
    ['root share just over 5 %', root(4 * GB, 210 * MB), 'root-disk-space', 'degraded'],
    ['root bytes just under 256 MB', root(10 * GB, 250 * MB), 'root-disk-space', 'unhealthy'],
    ['root bytes just over 256 MB', root(10 * GB, 260 * MB), 'root-disk-space', 'degraded'],
    // inodes: 5 % degraded, 1 % unhealthy (the same for both filesystems)
    ['data inodes just under 5 %', data(100 * GB, 50 * GB, 1_000_000, 49_000), 'data-disk-space', 'degraded'],
    ['data inodes just over 5 %', data(100 * GB, 50 * GB, 1_000_000, 51_000), 'data-disk-space', 'ok'],
    ['data inodes just under 1 %', data(100 * GB, 50 * GB, 1_000_000, 9_000), 'data-disk-space', 'unhealthy'],
    ['data inodes just over 1 %', data(100 * GB, 50 * GB, 1_000_000, 11_000), 'data-disk-space', 'degraded'],
    ['root inodes just under 1 %', root(4 * GB, 2 * GB, 100_000, 900), 'root-disk-space', 'unhealthy'],
    ['root inodes just over 5 %', root(4 * GB, 2 * GB, 100_000, 5_100), 'root-disk-space', 'ok'],
    ['a filesystem that counts no inodes', data(100 * GB, 50 * GB, 0, 0), 'data-disk-space', 'ok'],
  ];
  it.each(cases)('%s', (_, fs, check, status) => {
    const facts = check === 'data-disk-space' ? { data: fs } : { root: fs };
    expect(statusOf(evaluateDiskSpace(facts), check)).toBe(status);
  });

  it('gives the data disk a degraded action naming what to delete', () => {
    expect(byName(evaluateDiskSpace({ data: data(100 * GB, 9 * GB) }), 'data-disk-space')).toMatchObject({
      reason: 'The data disk has 9 GB free of 100 GB (9 %).',
      action: "Delete old videos or move them off the box; the box is clearing Docker's unused files.",
    });
  });

  it('takes other thresholds when given', () => {
    const t = { ...DEFAULT_DISK_SPACE_THRESHOLDS, data: { ...DEFAULT_DISK_SPACE_THRESHOLDS.data, degraded: { share: 0.5, bytes: 1000 * GB } } };
    expect(statusOf(evaluateDiskSpace({ data: data(100 * GB, 40 * GB) }, t), 'data-disk-space')).toBe('degraded');
  });
});

describe("evaluateDiskSpace: Docker's share and the journal", () => {
  const docker = (bytes: number) => ({ path: '/var/lib/memu/docker', bytes, measuredAt: Date.UTC(2026, 11, 5, 12) });

  it("says Docker's share; ok while the data disk has room, however big the share", () => {
    const r = byName(evaluateDiskSpace({ data: data(100 * GB, 50 * GB), docker: docker(45 * GB) }), 'docker-disk-use');
    expect(r).toMatchObject({ status: 'ok', reason: 'Apps and their images use 45 GB of the data disk (45 %).' });
    expect(r!.metrics.map((m) => [m.name, m.value])).toEqual([
      ['memu_docker_data_root_bytes', 45 * GB],
      ['memu_docker_data_root_measured_timestamp_seconds', Date.UTC(2026, 11, 5, 12) / 1000],
    ]);
  });

  it('is degraded when the data disk is low and Docker holds more than half its used space', () => {
    const r = byName(evaluateDiskSpace({ data: data(100 * GB, 8 * GB), docker: docker(47 * GB) }), 'docker-disk-use');
    expect(r).toMatchObject({
      status: 'degraded',
      reason: "Apps and their images use 47 GB of the data disk (47 %). That is 51 % of the used space, more than the family's own files.",
      action: 'The box is removing app images and build files that no app uses any more.',
    });
  });

  it('is ok when the data disk is low but Docker holds under half of it (the family’s files fill it)', () => {
    expect(statusOf(evaluateDiskSpace({ data: data(100 * GB, 8 * GB), docker: docker(45 * GB) }), 'docker-disk-use')).toBe('ok');
  });

  it('flags a journal over 300 MB (journald’s 200 MB cap not in force) and not one under', () => {
    const over = byName(evaluateDiskSpace({ journal: { path: '/var/log/journal', bytes: 301 * MB } }), 'log-disk-use');
    expect(over).toMatchObject({ status: 'degraded', reason: "The system's logs take 301 MB. They should stay under 300 MB.", action: 'The box is deleting the oldest logs.' });
    expect(over!.metrics).toEqual([{ name: 'memu_journal_disk_bytes', help: expect.any(String), type: 'gauge', labels: { path: '/var/log/journal' }, value: 301 * MB }]);
    expect(byName(evaluateDiskSpace({ journal: { path: '/var/log/journal', bytes: 299 * MB } }), 'log-disk-use')).toMatchObject({ status: 'ok', reason: "The system's logs take 299 MB." });
  });

  it('gives no result for a fact it does not have', () => {
    expect(evaluateDiskSpace({})).toEqual([]);
  });
});

describe('the disk-space readers', () => {
  it('reads statfs of a real directory and nothing for a missing one', async () => {
    const dir = await tempDir('memu-disk-');
    const fs = await readFilesystemSpace(dir);
    expect(fs).toMatchObject({ mountPoint: dir, sizeBytes: expect.any(Number), availBytes: expect.any(Number) });
    expect(fs!.sizeBytes).toBeGreaterThan(0);
    expect(await readFilesystemSpace(join(dir, 'missing'))).toBeUndefined();
  });

  it("sums the journal's files one directory down (journald's machine-id folder)", async () => {
    const dir = await tempDir('memu-journal-');
    await mkdir(join(dir, '0123456789abcdef0123456789abcdef'));
    await writeFile(join(dir, '0123456789abcdef0123456789abcdef', 'system.journal'), Buffer.alloc(64 * 1024, 1));
    await writeFile(join(dir, '0123456789abcdef0123456789abcdef', 'user-1000.journal'), Buffer.alloc(32 * 1024, 1));
    const total = await readJournalBytes(dir);
    expect(total).toBeGreaterThanOrEqual(96 * 1024);
    expect(total).toBeLessThan(200 * 1024);
    expect(await readJournalBytes(join(dir, 'missing'))).toBeUndefined();
  });

  it("measures Docker's data-root with du when it shares the data filesystem", async () => {
    const dataDir = await tempDir('memu-data-');
    await mkdir(join(dataDir, 'docker', 'overlay2'), { recursive: true });
    await writeFile(join(dataDir, 'docker', 'overlay2', 'layer'), Buffer.alloc(256 * 1024, 1));
    const bytes = await measureDockerDataRoot(join(dataDir, 'docker'), dataDir);
    expect(bytes).toBeGreaterThanOrEqual(256 * 1024);
    expect(await measureDockerDataRoot(join(dataDir, 'absent'), dataDir)).toBeUndefined();
  });
});

describe('createDiskSpaceCheck', () => {
  it('gives all four results from real directories, measuring Docker only once per interval', async () => {
    const dataDir = await tempDir('memu-data-');
    const journalDir = await tempDir('memu-journal-');
    await writeFile(join(journalDir, 'system.journal'), Buffer.alloc(8192, 1));
    let now = Date.UTC(2026, 11, 5, 12);
    const measured: string[] = [];
    const check = createDiskSpaceCheck({
      dataDir,
      rootDir: '/',
      journalDir,
      now: () => now,
      measureDocker: async (path) => {
        measured.push(path);
        return 3 * GB;
      },
    });
    expect(check.intervalMs).toBe(60_000);
    const first = await check.run();
    expect(first.map((r) => r.check)).toEqual(['data-disk-space', 'root-disk-space', 'docker-disk-use', 'log-disk-use']);
    expect(byName(first, 'docker-disk-use')!.reason).toMatch(/^Apps and their images use 3 GB of the data disk/);
    now += 60_000;
    await check.run();
    expect(measured).toEqual([join(dataDir, 'docker')]);
    now += 6 * 3600_000;
    await check.run();
    expect(measured).toHaveLength(2);
  });

  it('answers without waiting for a slow Docker measurement, and uses it once done', async () => {
    const dataDir = await tempDir('memu-data-');
    let finish: (b: number) => void = () => {};
    const check = createDiskSpaceCheck({
      dataDir,
      journalDir: join(dataDir, 'no-journal'),
      dockerMeasureWaitMs: 10,
      measureDocker: () => new Promise((resolve) => (finish = resolve)),
    });
    expect((await check.run()).map((r) => r.check)).toEqual(['data-disk-space', 'root-disk-space']);
    finish(2 * GB);
    await new Promise((resolve) => setImmediate(resolve));
    expect((await check.run()).map((r) => r.check)).toContain('docker-disk-use');
  });
});
