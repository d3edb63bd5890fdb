import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  createFilesystemErrorsCheck,
  DEFAULT_FILESYSTEM_EXPECTATIONS,
  evaluateFilesystemErrors,
  parseMounts,
  readFilesystemErrorFacts,
  type FilesystemErrorFacts,
} from '../../../../../agent/health/checks/filesystem-errors.ts';
import type { CheckResult } from '../../../../../agent/health/checks/check.ts';

const tree = (name: string) => {
  const dir = fileURLToPath(new URL(`../../../../fixtures/health/filesystem-errors/${name}/`, import.meta.url));
  return { procDir: `${dir}proc`, sysDir: `${dir}sys` };
};
const read = (name: string, dataDir = '/var/lib/memu') => readFilesystemErrorFacts({ ...tree(name), rootDir: '/', dataDir });
const byName = (results: CheckResult[], name: string) => results.find((r) => r.check === name);

const RESTART = "Restart the box: it checks and repairs the disk as it starts. If it happens again, the disk is failing: copy the family's files off and replace it.";

describe('reading mounts and ext4 error records', () => {
  it('reads the Debian host as recorded: its root on /dev/vda, no errors', async () => {
    const facts = await read('debian-host', '/var/lib/docker');
    expect(facts.ext4).toEqual([{ device: 'vda', errorsCount: 0, firstErrorTime: 0, lastErrorTime: 0 }]);
    expect(facts.mounts.find((m) => m.mountPoint === '/')).toMatchObject({ source: '/dev/vda', fstype: 'ext4', options: expect.arrayContaining(['rw', 'relatime']) });
    expect(evaluateFilesystemErrors(facts).map((r) => [r.check, r.status, r.reason])).toEqual([
      ['root-filesystem', 'ok', 'The system disk reports no errors and is writable.'],
      ['data-filesystem', 'ok', 'The data disk reports no errors and is writable.'],
    ]);
  });

  it('skips /sys/fs/ext4/features and decodes escaped mount points', async () => {
    expect((await read('box-healthy')).ext4.map((e) => e.device)).toEqual(['vda2', 'vda4']);
    expect(parseMounts('/dev/sdb1 /media/My\\040Photos ext4 rw 0 0\n')).toEqual([{ source: '/dev/sdb1', mountPoint: '/media/My Photos', fstype: 'ext4', options: ['rw'] }]);
  });
});

describe('evaluateFilesystemErrors, from the written box trees', () => {
  it('finds a healthy box ok, with the read-only flag and error count as metrics', async () => {
    const results = evaluateFilesystemErrors(await read('box-healthy'));
    expect(results.map((r) => [r.check, r.status])).toEqual([
      ['root-filesystem', 'ok'],
      ['data-filesystem', 'ok'],
    ]);
    expect(byName(results, 'data-filesystem')!.metrics).toEqual([
      { name: 'node_filesystem_readonly', help: expect.any(String), type: 'gauge', labels: { device: '/dev/vda4', fstype: 'ext4', mountpoint: '/var/lib/memu' }, value: 0 },
      { name: 'memu_filesystem_errors', help: expect.any(String), type: 'gauge', labels: { device: '/dev/vda4', mountpoint: '/var/lib/memu' }, value: 0 },
      { name: 'memu_filesystem_last_error_timestamp_seconds', help: expect.any(String), type: 'gauge', labels: { device: '/dev/vda4', mountpoint: '/var/lib/memu' }, value: 0 },
    ]);
  });

  it('finds 3 errors on the data disk degraded, with dates and a check at the next restart', async () => {
    const results = evaluateFilesystemErrors(await read('box-data-errors'));
    expect(byName(results, 'root-filesystem')!.status).toBe('ok');
    expect(byName(results, 'data-filesystem')).toMatchObject({
      status: 'degraded',
      reason: 'The data disk reported 3 errors since 28 Nov 2026, the last on 4 Dec 2026.',
      action: RESTART,
    });
  });

  it('finds a data disk the kernel remounted read-only unhealthy', async () => {
    expect(byName(evaluateFilesystemErrors(await read('box-data-readonly')), 'data-filesystem')).toMatchObject({
      status: 'unhealthy',
      reason: 'The data disk reported 1 error since 4 Dec 2026. The data disk has been switched to read-only, usually after disk errors: new photos and messages cannot be saved.',
      action: RESTART,
    });
  });

  it('finds a root remounted read-only unhealthy while the root should be writable', async () => {
    const facts = await read('box-root-readonly');
    expect(byName(evaluateFilesystemErrors(facts), 'root-filesystem')).toMatchObject({
      status: 'unhealthy',
      reason: 'The system disk reported 1 error since 4 Dec 2026. The system disk has been switched to read-only, usually after disk errors: settings and logs cannot be saved.',
    });
  });

  it('takes the expected mode as an option: a read-only root is fine in an image that mounts it so, a writable one is not', async () => {
    const roImage = { ...DEFAULT_FILESYSTEM_EXPECTATIONS, root: 'ro' as const };
    const healthyRoot = (await read('box-healthy')) satisfies FilesystemErrorFacts;
    const roRoot: FilesystemErrorFacts = { ...healthyRoot, mounts: healthyRoot.mounts.map((m) => (m.mountPoint === '/' ? { ...m, options: ['ro', 'relatime'] } : m)) };
    expect(byName(evaluateFilesystemErrors(roRoot, roImage), 'root-filesystem')).toMatchObject({ status: 'ok', reason: 'The system disk reports no errors and is read-only, as it should be.' });
    expect(byName(evaluateFilesystemErrors(healthyRoot, roImage), 'root-filesystem')).toMatchObject({
      status: 'degraded',
      reason: 'The system disk is writable but should be read-only.',
      action: 'Restart the box; if this stays, ask for help.',
    });
  });

  it('finds a data partition that is not mounted unhealthy, unless told not to require it', async () => {
    const facts = await read('box-data-unmounted');
    expect(byName(evaluateFilesystemErrors(facts), 'data-filesystem')).toMatchObject({
      status: 'unhealthy',
      reason: "The data disk is not mounted at /var/lib/memu; the family's files cannot be reached.",
      action: 'Restart the box. If this stays, the data disk may have failed or come loose: ask for help.',
    });
    expect(evaluateFilesystemErrors(facts, { ...DEFAULT_FILESYSTEM_EXPECTATIONS, requireDataMount: false }).map((r) => r.check)).toEqual(['root-filesystem']);
  });
});

describe('evaluateFilesystemErrors thresholds on both sides', () => {
  const facts = (errorsCount: number, options = ['rw']): FilesystemErrorFacts => ({
    rootDir: '/',
    dataDir: '/var/lib/memu',
    mounts: [
      { source: '/dev/nvme0n1p2', mountPoint: '/', fstype: 'ext4', options: ['rw'] },
      { source: '/dev/nvme0n1p4', mountPoint: '/var/lib/memu', fstype: 'ext4', options },
    ],
    ext4: [
      { device: 'nvme0n1p2', errorsCount: 0, firstErrorTime: 0, lastErrorTime: 0 },
      { device: 'nvme0n1p4', errorsCount, firstErrorTime: errorsCount ? 1796420409 : 0, lastErrorTime: errorsCount ? 1796420409 : 0 },
    ],
  });
  const data = (f: FilesystemErrorFacts) => byName(evaluateFilesystemErrors(f), 'data-filesystem')!;

  it('no error is ok, one error is degraded', () => {
    expect(data(facts(0)).status).toBe('ok');
    expect(data(facts(1))).toMatchObject({ status: 'degraded', reason: 'The data disk reported 1 error since 4 Dec 2026.' });
  });
  it('writable is ok, read-only is unhealthy even without a recorded error', () => {
    expect(data(facts(0, ['rw'])).status).toBe('ok');
    expect(data(facts(0, ['ro'])).status).toBe('unhealthy');
  });
  it('finds the record through the device name the mount resolves to', () => {
    const f = facts(2);
    f.mounts[1]!.source = '/dev/mapper/memu-data';
    f.ext4[1]!.device = 'dm-0';
    expect(data(f).status).toBe('ok');
    f.deviceNames = { '/dev/mapper/memu-data': 'dm-0' };
    expect(data(f).status).toBe('degraded');
  });
});

describe('createFilesystemErrorsCheck', () => {
  it('runs every minute over the given trees', async () => {
    const check = createFilesystemErrorsCheck({ ...tree('box-data-errors'), dataDir: '/var/lib/memu' });
    expect(check.intervalMs).toBe(60_000);
    expect((await check.run()).map((r) => [r.check, r.status])).toEqual([
      ['root-filesystem', 'ok'],
      ['data-filesystem', 'degraded'],
    ]);
  });
});
