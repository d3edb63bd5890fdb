import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateRebootCycles, readRebootRecord, readThisBoot, recordBoot, REBOOT_RECORD_PATH, type RebootRecord } from '../../../../../agent/factory-qa/checks/reboot-cycles.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

const record = (...upSeconds: number[]): RebootRecord => ({ format: 'memu-qa-reboots/1', boots: upSeconds.map((s, i) => ({ bootId: `boot-${i}`, upSeconds: s })) });

describe('the reboot cycles', () => {
  it('records each boot once, and counts the reboots left (the first boot is not a reboot)', async () => {
    const dataDir = await tempDir('memu-qa-reboots-');
    expect((await recordBoot(dataDir, { bootId: 'a', upSeconds: 31.2 }, 2)).rebootsLeft).toBe(2);
    // The agent restarted within the same boot: nothing new.
    expect((await recordBoot(dataDir, { bootId: 'a', upSeconds: 55 }, 2)).rebootsLeft).toBe(2);
    expect((await recordBoot(dataDir, { bootId: 'b', upSeconds: 29.9 }, 2)).rebootsLeft).toBe(1);
    const last = await recordBoot(dataDir, { bootId: 'c', upSeconds: 30.4 }, 2);
    expect(last.rebootsLeft).toBe(0);
    expect((await readRebootRecord(dataDir)).boots).toEqual([
      { bootId: 'a', upSeconds: 31.2 },
      { bootId: 'b', upSeconds: 29.9 },
      { bootId: 'c', upSeconds: 30.4 },
    ]);
  });

  it('an unreadable record counts as none: the cycles start again rather than pass untested', async () => {
    const dataDir = await tempDir('memu-qa-reboots-');
    await mkdir(join(dataDir, 'factory-qa'));
    await writeFile(join(dataDir, REBOOT_RECORD_PATH), '{"format": "memu-qa-reboots/1", "boots": [');
    expect(await readRebootRecord(dataDir)).toEqual(record());
    expect((await recordBoot(dataDir, { bootId: 'x', upSeconds: 1 }, 3)).rebootsLeft).toBe(3);
  });

  it('passes with every reboot done in time, fails naming too few or too slow ones, is skipped where the profile asks for none', () => {
    const t = { rebootCycles: 3, maxBootSeconds: 120 };
    expect(evaluateRebootCycles(record(40, 31, 33.5, 30), t)).toEqual([
      { check: 'reboot-cycles', verdict: 'pass', measured: 3, unit: 'reboots', threshold: { min: 3 }, reason: '3 warm reboots in a row, each back within 120 s (slowest 33.5 s).' },
    ]);
    expect(evaluateRebootCycles(record(40, 31), t)[0]).toMatchObject({ verdict: 'fail', measured: 1, reason: 'Only 1 of 3 warm reboots were recorded.' });
    expect(evaluateRebootCycles(record(40, 31, 250, 30), t)[0]).toMatchObject({
      verdict: 'fail',
      reason: '1 of 3 reboots took longer than 120 s to reach QA (slowest 250 s): check the drive and its adapter.',
    });
    expect(evaluateRebootCycles(record(), { rebootCycles: 0, maxBootSeconds: 120 })[0]).toMatchObject({ verdict: 'skipped' });
  });

  it("tells this boot from the kernel's boot id and uptime", async () => {
    const proc = await tempDir('memu-qa-proc-');
    await mkdir(join(proc, 'sys/kernel/random'), { recursive: true });
    await writeFile(join(proc, 'sys/kernel/random/boot_id'), '8d3c5e2a-7f1b-4c1e-9a51-0d1f2a3b4c5d\n');
    await writeFile(join(proc, 'uptime'), '42.37 80.12\n');
    expect(await readThisBoot(proc)).toEqual({ bootId: '8d3c5e2a-7f1b-4c1e-9a51-0d1f2a3b4c5d', upSeconds: 42.4 });
    await writeFile(join(proc, 'uptime'), '');
    await expect(readThisBoot(proc)).rejects.toThrow(/cannot tell this boot/);
  });
});
