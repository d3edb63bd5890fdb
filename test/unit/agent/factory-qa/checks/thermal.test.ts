import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateThermal, readThermal } from '../../../../../agent/factory-qa/checks/thermal.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture, recordedRunner } from './qa-fixtures.ts';

const pi5 = qaFixture('pi5-nvme-hailo');
const badPi5 = qaFixture('pi5-bad-seating');
const vm = qaFixture('qemu-amd64');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));

describe('thermal under a bounded load', () => {
  it('reads the zone before and after the load on every core and samples the Pi power state meanwhile', async () => {
    const run = recordedRunner({ stress: {} });
    const facts = await readThermal(join(pi5, 'sys'), run, 60, 5, 4);
    expect(run.calls).toEqual([['stress', '--cpu', '4', '--timeout', '60s', '--quiet']]);
    expect(facts).toEqual({ idleC: 48.3, loadC: 48.3, loadSeconds: 60, stress: { exitCode: 0 }, underVoltageDuringLoad: false });
    expect(evaluateThermal(facts, pi5Thresholds)).toMatchObject([
      { check: 'temperature-idle', verdict: 'pass', measured: 48.3, unit: '°C', threshold: { max: 70 } },
      { check: 'temperature-load', verdict: 'pass', reason: 'Temperature after 60 s of full load on every core: 48.3 °C, at most 85 °C allowed.' },
      { check: 'throttling', verdict: 'pass' },
    ]);
  });

  it("a Pi whose supply sags under load: the firmware's throttled word and the rpi_volt alarm fail the throttling check", async () => {
    const facts = await readThermal(join(badPi5, 'sys'), recordedRunner({ stress: {} }), 60, 5);
    expect(facts).toMatchObject({ throttledDuringLoad: true, underVoltageDuringLoad: true });
    expect(evaluateThermal(facts, pi5Thresholds)[2]).toMatchObject({ check: 'throttling', verdict: 'fail', measured: false });
  });

  it('too hot under load, throttling and under-voltage fail; no throttling result where the board reports none', () => {
    const hot = { idleC: 55, loadC: 86.4, loadSeconds: 60, stress: { exitCode: 0 }, throttledDuringLoad: true, underVoltageDuringLoad: true };
    expect(evaluateThermal(hot, pi5Thresholds)).toMatchObject([
      { verdict: 'pass' },
      { verdict: 'fail', reason: 'Temperature after 60 s of full load on every core: 86.4 °C, above the 85 °C allowed.' },
      { verdict: 'fail', reason: 'During the load the supply dropped below its voltage (under-voltage) and the firmware slowed the processor down: check the power supply and the cooling.' },
    ]);
    expect(evaluateThermal({ idleC: 40, loadC: 60, loadSeconds: 5, stress: { exitCode: 0 } }, vmThresholds).map((o) => o.check)).toEqual(['temperature-idle', 'temperature-load']);
  });

  it('a board without a thermal zone fails where its profile requires a sensor; stress missing fails anywhere', async () => {
    const facts = await readThermal(join(vm, 'sys'), recordedRunner({}), 5, 5);
    expect(evaluateThermal(facts, { ...vmThresholds, thermalSensorRequired: true })).toMatchObject([
      { check: 'temperature-idle', verdict: 'fail', reason: 'The board reports no temperature (no thermal zone).' },
      { check: 'temperature-load', verdict: 'fail', reason: expect.stringContaining('Debian package stress') },
    ]);
    expect(evaluateThermal(facts, vmThresholds)).toMatchObject([
      { check: 'temperature-idle', verdict: 'skipped' },
      { check: 'temperature-load', verdict: 'fail', reason: expect.stringContaining('Debian package stress') },
    ]);
  });

  it("a VM (no sensor, none required) still runs the load: the temperatures are skipped, a load that did not finish fails", async () => {
    const facts = await readThermal(join(vm, 'sys'), recordedRunner({ stress: {} }), 5, 5);
    expect(evaluateThermal(facts, vmThresholds)).toMatchObject([
      { check: 'temperature-idle', verdict: 'skipped', reason: 'This target has no temperature sensor, and its profile does not require one.' },
      { check: 'temperature-load', verdict: 'skipped', reason: '5 s of full load on every core ran; this target has no temperature sensor to read after it.' },
    ]);
    expect(evaluateThermal({ ...facts, stress: { exitCode: 137 } }, vmThresholds)[1]).toMatchObject({ check: 'temperature-load', verdict: 'fail' });
  });
});
