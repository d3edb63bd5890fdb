import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createPowerSupplyCheck, decodeThrottled, evaluatePowerSupply } from '../../../../../agent/health/checks/power-supply.ts';

// Sysfs trees of a Pi 5 (hwmon: cpu_thermal, rp1_adc, rpi_volt; the firmware's
// get_throttled) and a NUC. See test/fixtures/health/power-supply/README.md.
const board = (name: string) => fileURLToPath(new URL(`../../../../fixtures/health/power-supply/${name}/sys`, import.meta.url));
const run = (name: string, firmwareThrottled = true) => createPowerSupplyCheck({ sysDir: board(name), firmwareThrottled }).run();

const ACTION = 'Use the official Raspberry Pi 27 W USB-C power supply (5 V, 5 A) plugged straight into the wall, not a phone charger, a long cable or a USB hub.';
const NOW = 'The power supply is not giving the box enough power right now (under-voltage): the box slows down and can lose what it is saving or switch itself off.';
const EARLIER =
  'The power supply could not give the box enough power at least once since it started (under-voltage); it is enough right now, but may not be the next time the box works hard.';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("the firmware's throttled word", () => {
  it('reads the sysfs file (hex without 0x) and vcgencmd\'s output alike', () => {
    for (const text of ['50005\n', 'throttled=0x50005']) {
      expect(decodeThrottled(text)).toEqual({
        now: { underVoltage: true, frequencyCapped: false, throttled: true, softTemperatureLimit: false },
        earlier: { underVoltage: true, frequencyCapped: false, throttled: true, softTemperatureLimit: false },
      });
    }
    expect(decodeThrottled('80008')?.now.softTemperatureLimit).toBe(true);
    expect(decodeThrottled('')).toBeUndefined();
    expect(decodeThrottled('error')).toBeUndefined();
  });
});

describe('power supply', () => {
  it('a Pi 5 on a good supply: ok', async () => {
    const [r] = await run('pi5-ok');
    expect(r).toEqual({
      check: 'power-supply',
      status: 'ok',
      reason: 'The power supply gives the box enough power (it offers 5.0 A).',
      metrics: [
        { name: 'memu_under_voltage', help: 'The power supply gives too little voltage (1) or enough (0): now, and at any time since boot', type: 'gauge', labels: { when: 'now' }, value: 0 },
        { name: 'memu_under_voltage', help: 'The power supply gives too little voltage (1) or enough (0): now, and at any time since boot', type: 'gauge', labels: { when: 'since_boot' }, value: 0 },
        { name: 'memu_power_supply_max_current_amperes', help: 'The current the power supply says it can give', type: 'gauge', value: 5 },
      ],
    });
  });

  it('under-voltage now is unhealthy, with what to buy', async () => {
    const [r] = await run('pi5-under-voltage-now');
    expect(r).toMatchObject({ status: 'unhealthy', reason: NOW, action: ACTION });
    expect(r!.metrics.map((m) => m.value)).toEqual([1, 1, 5]);
  });

  it('under-voltage earlier since boot is degraded', async () => {
    const [r] = await run('pi5-under-voltage-earlier');
    expect(r).toMatchObject({ status: 'degraded', reason: EARLIER, action: ACTION });
    expect(r!.metrics.map((m) => m.value)).toEqual([0, 1, 5]);
  });

  it('a Pi 5 on a supply that offers less than 5 A is degraded, with what it offers', async () => {
    expect(await run('pi5-3a-supply')).toMatchObject([
      { status: 'degraded', reason: 'The power supply says it can give 3.0 A; the box needs 5.0 A to run its drive and USB devices when it is busy.', action: ACTION },
    ]);
    expect(evaluatePowerSupply({ supplyMaxCurrentMa: 5000 })[0]!.status).toBe('ok');
    expect(evaluatePowerSupply({ supplyMaxCurrentMa: 4999 })[0]!.status).toBe('degraded');
    // Under-voltage says more than the rating.
    expect(evaluatePowerSupply({ supplyMaxCurrentMa: 3000, underVoltageAlarm: true })[0]!.status).toBe('unhealthy');
  });

  it("the rpi_volt sensor's alarm alone is enough (mainline kernels, or get_throttled left unread)", async () => {
    expect(await run('pi5-hwmon-only')).toMatchObject([{ status: 'unhealthy', reason: NOW }]);
    expect(await run('pi5-under-voltage-now', false)).toMatchObject([{ status: 'unhealthy', reason: NOW }]);
    // Without the firmware's word, only the sensor's "now" is known: earlier under-voltage is what the check saw itself.
    expect(await run('pi5-under-voltage-earlier', false)).toMatchObject([{ status: 'ok' }]);
  });

  it('a NUC or a VM cannot tell: no result', async () => {
    expect(await run('nuc')).toEqual([]);
    expect(await createPowerSupplyCheck({ sysDir: '/nonexistent' }).run()).toEqual([]);
    expect(evaluatePowerSupply({})).toEqual([]);
  });

  it('remembers under-voltage it saw, since the firmware and the hwmon driver clear theirs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-power-'));
    dirs.push(dir);
    await cp(board('pi5-ok'), dir, { recursive: true });
    const check = createPowerSupplyCheck({ sysDir: dir });
    await writeFile(join(dir, 'class/hwmon/hwmon2/in0_lcrit_alarm'), '1\n');
    expect((await check.run())[0]!.status).toBe('unhealthy');
    await writeFile(join(dir, 'class/hwmon/hwmon2/in0_lcrit_alarm'), '0\n');
    expect((await check.run())[0]).toMatchObject({ status: 'degraded', reason: EARLIER });
  });
});
