import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { evaluateDiskSpeed, fioArguments, parseFioJson, readDiskSpeed } from '../../../../../agent/factory-qa/checks/disk-speed.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture, recordedRunner, toolOutput } from './qa-fixtures.ts';

const pi5 = qaFixture('pi5-nvme-hailo');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));

describe('fio sequential speed', () => {
  it('reads bytes per second from fio 3.x JSON and judges in MB/s', () => {
    const facts = parseFioJson(toolOutput('fio-3.33-pi5-nvme.json'));
    expect(facts).toEqual({ writeBytesPerSecond: 412_318_720, readBytesPerSecond: 861_203_456 });
    expect(evaluateDiskSpeed(facts, pi5Thresholds)).toEqual([
      { check: 'disk-write-speed', verdict: 'pass', measured: 412.3, unit: 'MB/s', threshold: { min: 200 }, reason: 'Sequential write: 412.3 MB/s, at least 200 MB/s needed.' },
      { check: 'disk-read-speed', verdict: 'pass', measured: 861.2, unit: 'MB/s', threshold: { min: 300 }, reason: 'Sequential read: 861.2 MB/s, at least 300 MB/s needed.' },
    ]);
  });

  it('a slow drive fails both; a failed job fails with fio\'s error', () => {
    expect(evaluateDiskSpeed(parseFioJson(toolOutput('fio-3.33-slow-drive.json')), pi5Thresholds).map((o) => [o.verdict, o.measured])).toEqual([
      ['fail', 23.5],
      ['fail', 44],
    ]);
    expect(evaluateDiskSpeed(parseFioJson(toolOutput('fio-3.33-write-enospc.json')), pi5Thresholds)[0]).toMatchObject({
      verdict: 'fail',
      reason: "Sequential write was not measured: fio's seq-write job failed with error 28.",
    });
    expect(parseFioJson('fio: pid=0, err=2/file:filesetup.c:…')).toMatchObject({ problem: expect.stringContaining('not JSON') });
  });

  describe('on the data partition', () => {
    let dir: string | undefined;
    afterEach(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('runs fio on a scratch file in free space and removes it; refuses when space is short', async () => {
      dir = await mkdtemp(join(tmpdir(), 'memu-qa-fio-'));
      const run = recordedRunner({ fio: { stdout: toolOutput('fio-3.33-pi5-nvme.json') } });
      const facts = await readDiskSpeed(dir, run, 1);
      expect(facts.writeBytesPerSecond).toBe(412_318_720);
      expect(run.calls).toEqual([['fio', ...fioArguments(join(dir, '.memu-qa-fio.tmp'), 1)]]);
      expect(await readdir(dir)).toEqual([]);
      const tooBig = await readDiskSpeed(dir, run, 1024 ** 3);
      expect(tooBig.problem).toMatch(/^the data partition has \d+ MiB free, \d+ MiB are needed$/);
      expect(run.calls).toHaveLength(1);
      expect(evaluateDiskSpeed(await readDiskSpeed(dir, recordedRunner({}), 1), pi5Thresholds)[0]!.reason).toContain('Debian package fio');
    });
  });
});
