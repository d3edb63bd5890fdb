import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import {
  createNvmeSmartCheck,
  DEFAULT_NVME_THRESHOLDS,
  evaluateNvmeSmart,
  parseSmartctlNvme,
  readNvmeHwmonLimits,
  type CommandRunner,
  type NvmeHealth,
} from '../../../../../agent/health/checks/nvme-smart.ts';

// `smartctl --json=c -a /dev/nvme0` outputs written from smartmontools' nvmeprint.cpp
// (7.4: Debian 13; 7.5 adds the composite temperature thresholds) and the sysfs trees of
// boards with and without NVMe. See test/fixtures/health/nvme-smart/README.md.
const fixture = (name: string) => fileURLToPath(new URL(`../../../../fixtures/health/nvme-smart/${name}`, import.meta.url));
const smartctl = (name: string) => readFileSync(fixture(name), 'utf8');

/** A runner answering smartctl with recorded output, one file per device. */
function runner(outputs: Record<string, string>): CommandRunner & { calls: string[][] } {
  const calls: string[][] = [];
  const run = async (cmd: string, args: readonly string[]) => {
    calls.push([cmd, ...args]);
    const file = outputs[args.at(-1)!];
    const stdout = file ? smartctl(file) : '';
    return { code: (JSON.parse(stdout || '{}') as { smartctl?: { exit_status?: number } }).smartctl?.exit_status ?? 0, stdout, stderr: '' };
  };
  return Object.assign(run, { calls });
}

const REPLACE = "Make sure the family's backup is complete and recent, then replace the drive.";
const COOL = 'Give the drive air: keep the box out of closed cupboards, keep its vents free, and fit a heatsink on the drive if it has none.';

const healthy: NvmeHealth = {
  controller: 'nvme0',
  model: 'Samsung SSD 980 500GB',
  criticalWarning: 0,
  temperatureCelsius: 38,
  warningCelsius: 82,
  criticalCelsius: 85,
  percentageUsed: 3,
  availableSparePercent: 100,
  availableSpareThresholdPercent: 10,
  mediaErrors: 0,
};
const judge = (change: Partial<NvmeHealth>) => evaluateNvmeSmart([{ ...healthy, ...change }])[0]!;

describe('NVMe SMART: thresholds', () => {
  it('wear: ok below 80 %, degraded from 80 %, unhealthy from 100 % of rated life', () => {
    expect(DEFAULT_NVME_THRESHOLDS).toMatchObject({ wearDegradedPercent: 80, wearUnhealthyPercent: 100 });
    expect(judge({ percentageUsed: 79 }).status).toBe('ok');
    expect(judge({ percentageUsed: 80 })).toMatchObject({
      status: 'degraded',
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it is wearing out: 80 % of its rated life is used.',
      action: REPLACE,
    });
    expect(judge({ percentageUsed: 99 }).status).toBe('degraded');
    expect(judge({ percentageUsed: 100 })).toMatchObject({ status: 'unhealthy', reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it is worn out: 100 % of its rated life is used.' });
  });

  it("spare: degraded within 10 points of the drive's own threshold, unhealthy at it", () => {
    expect(judge({ availableSparePercent: 20 }).status).toBe('ok');
    expect(judge({ availableSparePercent: 19 })).toMatchObject({
      status: 'degraded',
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it has 19 % of its spare blocks left (it needs at least 10 %).',
    });
    expect(judge({ availableSparePercent: 10 }).status).toBe('unhealthy');
  });

  it('media errors: any one is degraded', () => {
    expect(judge({ mediaErrors: 0 }).status).toBe('ok');
    expect(judge({ mediaErrors: 1 })).toMatchObject({
      status: 'degraded',
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it could not read back stored data 1 time (media errors).',
      action: "Make sure the family's backup is complete and recent; replace the drive if this number keeps growing.",
    });
  });

  it("temperature: against the drive's own warning and critical limits", () => {
    expect(judge({ temperatureCelsius: 81 }).status).toBe('ok');
    expect(judge({ temperatureCelsius: 82 })).toMatchObject({
      status: 'degraded',
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it is at 82 °C, at or above its warning limit of 82 °C.',
      action: COOL,
    });
    expect(judge({ temperatureCelsius: 85 })).toMatchObject({ status: 'unhealthy', reason: expect.stringContaining('it is at 85 °C, at or above its critical limit of 85 °C') });
  });

  it('temperature: 70 / 80 °C when the drive gives no limits', () => {
    expect(judge({ warningCelsius: undefined, criticalCelsius: undefined, temperatureCelsius: 69 }).status).toBe('ok');
    expect(judge({ warningCelsius: undefined, criticalCelsius: undefined, temperatureCelsius: 70 }).status).toBe('degraded');
    expect(judge({ warningCelsius: undefined, criticalCelsius: undefined, temperatureCelsius: 80 }).status).toBe('unhealthy');
  });

  it('names every critical warning bit; only the temperature bit is less than unhealthy', () => {
    const reasons = [0x01, 0x04, 0x08, 0x10, 0x20, 0x40].map((bit) => judge({ criticalWarning: bit, availableSparePercent: 5 }));
    expect(reasons.map((r) => r.status)).toEqual(['unhealthy', 'unhealthy', 'unhealthy', 'unhealthy', 'unhealthy', 'unhealthy']);
    expect(reasons.map((r) => r.reason.replace('The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: ', ''))).toEqual([
      'the drive reports that its spare blocks have fallen below its safe minimum.',
      'the drive reports that its reliability is degraded by media or internal errors; it has 5 % of its spare blocks left (it needs at least 10 %).',
      'the drive reports that it has made itself read-only to protect the data; it has 5 % of its spare blocks left (it needs at least 10 %).',
      'the drive reports that its power-loss backup has failed; it has 5 % of its spare blocks left (it needs at least 10 %).',
      'the drive reports that its persistent memory region is unreliable; it has 5 % of its spare blocks left (it needs at least 10 %).',
      'the drive reports a critical warning (0x40); it has 5 % of its spare blocks left (it needs at least 10 %).',
    ]);
    expect(judge({ criticalWarning: 0x02, temperatureCelsius: 40 })).toMatchObject({ status: 'degraded', reason: expect.stringContaining('its temperature is outside its safe range') });
  });
});

describe('NVMe SMART from recorded smartctl output', () => {
  it('reads smartctl 7.4 JSON, taking the limits from the kernel\'s nvme hwmon (7.4 does not print them in JSON)', async () => {
    expect(await readNvmeHwmonLimits(fixture('nuc/sys'), 'nvme0')).toEqual({ warningCelsius: 83, criticalCelsius: 85 });
    const run = runner({ '/dev/nvme0': 'smartctl-7.4-samsung-980-healthy.json' });
    const results = await createNvmeSmartCheck({ sysDir: fixture('nuc/sys'), run }).run();
    expect(run.calls).toEqual([['smartctl', '--json=c', '-a', '/dev/nvme0']]);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({
      check: 'nvme-smart-nvme0',
      status: 'ok',
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) is healthy: 3 % of its rated life used, no media errors, 38 °C (its warning is 83 °C).',
    });
    expect(results[0]!.action).toBeUndefined();
    const values = Object.fromEntries(results[0]!.metrics.map((m) => [m.name, m.value]));
    expect(values).toEqual({
      memu_nvme_critical_warning: 0,
      memu_nvme_percentage_used: 3,
      memu_nvme_available_spare_percent: 100,
      memu_nvme_available_spare_threshold_percent: 10,
      memu_nvme_media_errors_total: 0,
      memu_nvme_temperature_celsius: 38,
      memu_nvme_unsafe_shutdowns_total: 31,
      memu_nvme_power_on_hours: 6120,
    });
    expect(results[0]!.metrics.every((m) => m.labels?.device === 'nvme0')).toBe(true);
  });

  it("prefers smartctl 7.5's own composite temperature thresholds", () => {
    const d = parseSmartctlNvme('nvme0', smartctl('smartctl-7.5-samsung-980-hot.json'), { warningCelsius: 70, criticalCelsius: 75 });
    expect(d).toMatchObject({ warningCelsius: 82, criticalCelsius: 85, temperatureCelsius: 83, criticalWarning: 2 });
    expect(evaluateNvmeSmart([d])[0]).toMatchObject({
      status: 'degraded',
      // The drive's temperature bit is said once, as the reading against its limit.
      reason: 'The NVMe drive (Samsung SSD 980 500GB, nvme0) needs attention: it is at 83 °C, at or above its warning limit of 82 °C.',
      action: COOL,
    });
  });

  it('a worn drive with media errors, one result per controller', async () => {
    const run = runner({ '/dev/nvme0': 'smartctl-7.4-samsung-980-healthy.json', '/dev/nvme1': 'smartctl-7.5-wd-sn570-worn.json' });
    const results = await createNvmeSmartCheck({ sysDir: fixture('pi5-two-drives/sys'), run }).run();
    expect(results.map((r) => [r.check, r.status])).toEqual([
      ['nvme-smart-nvme0', 'ok'],
      ['nvme-smart-nvme1', 'degraded'],
    ]);
    expect(results[1]).toMatchObject({
      reason: 'The NVMe drive (WD Blue SN570 500GB, nvme1) needs attention: it is wearing out: 87 % of its rated life is used; it could not read back stored data 3 times (media errors).',
      action: REPLACE,
    });
  });

  it('a failing drive: every problem in one reason, unhealthy, replace it', () => {
    const [r] = evaluateNvmeSmart([parseSmartctlNvme('nvme0', smartctl('smartctl-7.4-failing.json'))]);
    expect(r).toMatchObject({
      status: 'unhealthy',
      reason:
        'The NVMe drive (KINGSTON SNVS250G, nvme0) needs attention: the drive reports that its spare blocks have fallen below its safe minimum; ' +
        'the drive reports that its reliability is degraded by media or internal errors; the drive reports that it has made itself read-only to protect the data; ' +
        'it is worn out: 104 % of its rated life is used; it could not read back stored data 1822 times (media errors).',
      action: REPLACE,
    });
  });

  it('a drive smartctl cannot open breaks the check, with smartctl\'s message', async () => {
    const run = runner({ '/dev/nvme0': 'smartctl-7.4-open-failed.json' });
    await expect(createNvmeSmartCheck({ sysDir: fixture('nuc/sys'), run }).run()).rejects.toThrow(
      'smartctl gave no SMART / Health log for /dev/nvme0: Smartctl open device: /dev/nvme0 failed: Permission denied',
    );
    expect(() => parseSmartctlNvme('nvme0', 'smartctl 6.6 2016-05-31\n')).toThrow("smartctl's output for /dev/nvme0 is not JSON");
  });

  it('smartctl not installed: no result and one log line, not a failure', async () => {
    const warn = vi.fn();
    const run: CommandRunner = async () => ({ code: null, stdout: '', stderr: '', notInstalled: true, startError: 'spawn smartctl ENOENT' });
    const check = createNvmeSmartCheck({ sysDir: fixture('nuc/sys'), run, log: { warn } as never });
    expect(await check.run()).toEqual([]);
    expect(await check.run()).toEqual([]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![1]).toBe("smartctl is not installed, so the NVMe drive's health is not checked");
  });

  it('no NVMe (the VM, a Pi on an SD card): no result, smartctl never started', async () => {
    const run = runner({});
    expect(await createNvmeSmartCheck({ sysDir: fixture('qemu-amd64/sys'), run }).run()).toEqual([]);
    expect(await createNvmeSmartCheck({ sysDir: '/nonexistent', run }).run()).toEqual([]);
    expect(run.calls).toEqual([]);
  });

  it('runs once an hour', () => {
    expect(createNvmeSmartCheck().intervalMs).toBe(60 * 60_000);
  });
});
