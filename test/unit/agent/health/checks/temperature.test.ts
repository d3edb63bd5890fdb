import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createTemperatureCheck, DEFAULT_TEMPERATURE_THRESHOLDS, evaluateTemperature, parseMillidegrees, readThermalZones } from '../../../../../agent/health/checks/temperature.ts';

// Sysfs trees written from the kernel's formats (thermal zones: `type`, `temp` in
// millidegrees; the Raspberry Pi firmware driver's get_throttled: the word in hex without
// 0x). Pi 4: the firmware device is soc:firmware; Pi 5: found through the driver's
// directory. See test/fixtures/health/temperature/README.md.
const board = (name: string) => fileURLToPath(new URL(`../../../../fixtures/health/temperature/${name}/sys`, import.meta.url));
const run = (name: string) => createTemperatureCheck({ sysDir: board(name), firmwareThrottled: true }).run();

const COOLING = 'Give the box air: take it out of closed cupboards and away from heaters, keep its vents free of dust, and check that its fan turns.';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('temperature: thresholds', () => {
  const judge = (celsius: number) => evaluateTemperature({ zones: [{ zone: '0', type: 'cpu-thermal', celsius }] })[0]!;

  it('is ok below 80 °C, degraded from 80 °C, unhealthy from 85 °C (where a Pi throttles, then throttles hard)', () => {
    expect(DEFAULT_TEMPERATURE_THRESHOLDS).toMatchObject({ degradedCelsius: 80, unhealthyCelsius: 85 });
    expect(judge(79.9)).toMatchObject({ status: 'ok', reason: "The box's temperature is fine: 79.9 °C (cpu-thermal), below 80 °C." });
    expect(judge(80)).toMatchObject({
      status: 'degraded',
      reason: 'The box runs hot: 80 °C (cpu-thermal), at or above 80 °C, where it starts to slow itself down.',
      action: COOLING,
    });
    expect(judge(84.9).status).toBe('degraded');
    expect(judge(85)).toMatchObject({
      status: 'unhealthy',
      reason: 'The box is too hot: 85 °C (cpu-thermal), at or above 85 °C, where it slows itself down hard to avoid damage.',
      action: COOLING,
    });
  });

  it('judges the warmest zone and graphs every zone with node-exporter\'s name and labels', () => {
    const [r] = evaluateTemperature({
      zones: [
        { zone: '0', type: 'acpitz', celsius: 27.8 },
        { zone: '1', type: 'x86_pkg_temp', celsius: 81 },
      ],
    });
    expect(r).toMatchObject({ check: 'temperature', status: 'degraded' });
    expect(r!.metrics).toEqual([
      { name: 'node_thermal_zone_temp', help: 'Zone temperature in Celsius', type: 'gauge', labels: { zone: '0', type: 'acpitz' }, value: 27.8 },
      { name: 'node_thermal_zone_temp', help: 'Zone temperature in Celsius', type: 'gauge', labels: { zone: '1', type: 'x86_pkg_temp' }, value: 81 },
    ]);
  });

  it('takes other thresholds when given', () => {
    expect(evaluateTemperature({ zones: [{ zone: '0', type: 'cpu-thermal', celsius: 70 }] }, { ...DEFAULT_TEMPERATURE_THRESHOLDS, degradedCelsius: 70 })[0]!.status).toBe('degraded');
  });

  it('ignores readings no sensor gives (absent, zero, below absolute zero, 255 °C)', () => {
    expect(['', '0', '-273000', '255000', 'abc'].map(parseMillidegrees)).toEqual([undefined, undefined, undefined, undefined, undefined]);
    expect(parseMillidegrees('51850\n')).toBe(51.9);
  });
});

describe('temperature and throttling, from recorded sysfs trees', () => {
  it('a Pi 5 at rest: fine, at full speed', async () => {
    const results = await run('pi5-idle');
    expect(results.map(({ check, status, reason }) => ({ check, status, reason }))).toEqual([
      { check: 'temperature', status: 'ok', reason: "The box's temperature is fine: 51.9 °C (cpu-thermal), below 80 °C." },
      { check: 'throttling', status: 'ok', reason: 'The processor runs at full speed; it has not slowed itself down since the box started.' },
    ]);
    expect(results[1]!.metrics).toContainEqual({
      name: 'memu_throttled',
      help: 'The Raspberry Pi firmware slows the processor down (1) or not (0): now, and at any time since boot',
      type: 'gauge',
      labels: { condition: 'frequency_capped', when: 'now' },
      value: 0,
    });
  });

  it('a Pi 5 in a cupboard: hot, and capping its clock now to stay cool', async () => {
    const [temperature, throttling] = await run('pi5-hot');
    expect(temperature).toMatchObject({ status: 'degraded', reason: 'The box runs hot: 82.3 °C (cpu-thermal), at or above 80 °C, where it starts to slow itself down.' });
    expect(throttling).toMatchObject({
      check: 'throttling',
      status: 'degraded',
      reason: 'The processor is slowing itself down right now (frequency capped, soft temperature limit) to stay cool, so the box answers more slowly.',
      action: COOLING,
    });
    const now = throttling!.metrics.filter((m) => m.labels?.when === 'now' && m.value === 1).map((m) => m.labels?.condition);
    expect(now).toEqual(['frequency_capped', 'soft_temperature_limit']);
  });

  it('a Pi 4 (firmware at soc:firmware) over 85 °C and throttled', async () => {
    const [temperature, throttling] = await run('pi4-throttled');
    expect(temperature).toMatchObject({ status: 'unhealthy', reason: 'The box is too hot: 85.9 °C (cpu-thermal), at or above 85 °C, where it slows itself down hard to avoid damage.' });
    expect(throttling).toMatchObject({ status: 'degraded', reason: 'The processor is slowing itself down right now (throttled, frequency capped) to stay cool, so the box answers more slowly.' });
  });

  it('a Pi 5 that slowed down earlier but runs at full speed now is ok, and says so', async () => {
    const [, throttling] = await run('pi5-throttled-earlier');
    expect(throttling).toMatchObject({
      status: 'ok',
      reason: 'The processor runs at full speed now; it slowed itself down at least once since the box started (throttled, frequency capped).',
    });
    expect(throttling!.action).toBeUndefined();
  });

  it('blames the power supply when the firmware slows down for under-voltage', () => {
    const flags = { underVoltage: true, frequencyCapped: false, throttled: true, softTemperatureLimit: false };
    const none = { underVoltage: false, frequencyCapped: false, throttled: false, softTemperatureLimit: false };
    const [throttling] = evaluateTemperature({ zones: [], throttled: { now: flags, earlier: none } });
    expect(throttling).toMatchObject({
      status: 'degraded',
      reason: 'The processor is slowing itself down right now (throttled) because the power supply gives too little power, so the box answers more slowly.',
      action: 'Use the official Raspberry Pi 27 W USB-C power supply (5 V, 5 A) plugged straight into the wall.',
    });
  });

  it('a NUC: the warmest readable zone, no throttling result (no Pi firmware)', async () => {
    const results = await run('nuc');
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ check: 'temperature', status: 'ok', reason: "The box's temperature is fine: 47 °C (x86_pkg_temp), below 80 °C." });
    expect(await readThermalZones(board('nuc'))).toEqual([
      { zone: '0', type: 'acpitz', celsius: 27.8 },
      { zone: '1', type: 'x86_pkg_temp', celsius: 47 },
    ]);
  });

  it("leaves the firmware's get_throttled file alone unless asked (reading it taints a Raspberry Pi kernel)", async () => {
    const results = await createTemperatureCheck({ sysDir: board('pi5-hot') }).run();
    expect(results.map((r) => r.check)).toEqual(['temperature']);
    expect(results[0]!.status).toBe('degraded');
  });

  it('a VM has no thermal zone and no firmware: no result', async () => {
    expect(await run('qemu-amd64')).toEqual([]);
    expect(await createTemperatureCheck({ sysDir: '/nonexistent' }).run()).toEqual([]);
  });

  it('remembers throttling it saw, since the firmware clears its "since" bits when read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memu-temperature-'));
    dirs.push(dir);
    await cp(board('pi5-idle'), dir, { recursive: true });
    const file = join(dir, 'bus/platform/drivers/raspberrypi-firmware/soc@107c000000:firmware/get_throttled');
    const check = createTemperatureCheck({ sysDir: dir, firmwareThrottled: true });
    await writeFile(file, '40004\n');
    expect((await check.run())[1]!.status).toBe('degraded');
    await writeFile(file, '0\n');
    expect((await check.run())[1]).toMatchObject({ status: 'ok', reason: 'The processor runs at full speed now; it slowed itself down at least once since the box started (throttled).' });
  });
});
