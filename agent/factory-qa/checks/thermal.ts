import { availableParallelism } from 'node:os';
import { readFirmwareThrottled, readThermalZones, readUnderVoltageAlarm } from '../../health/index.ts';
import { atMost, failed, notInstalled, skipped, type QaCheckOutcome, type QaCommandRunner } from './qa-check.ts';

/**
 * Cooling and power under load: the warmest thermal zone before and after a bounded
 * `stress` run on every core, and, on a Raspberry Pi, whether its firmware throttled or
 * saw under-voltage meanwhile (the throttled word's bits, Raspberry Pi documentation
 * "get_throttled"; the rpi_volt sensor's alarm). A unit whose fan or heatsink is missing
 * passes idle and fails here; one with a weak supply fails the power part.
 */
export interface ThermalFacts {
  idleC?: number;
  loadC?: number;
  loadSeconds: number;
  stress: { exitCode: number | null; notInstalled?: boolean };
  /** Seen at any sample during the load; undefined where the platform does not report it. */
  throttledDuringLoad?: boolean;
  underVoltageDuringLoad?: boolean;
}

export function evaluateThermal(facts: ThermalFacts, t: { thermalSensorRequired: boolean; maxIdleTemperatureC: number; maxLoadTemperatureC: number }): QaCheckOutcome[] {
  // A target without a sensor (a virtual machine) still takes the load: stress must run, and the unit must survive it.
  const noSensor = facts.idleC === undefined && !t.thermalSensorRequired;
  const results: QaCheckOutcome[] = [
    noSensor
      ? skipped('temperature-idle', 'This target has no temperature sensor, and its profile does not require one.')
      : facts.idleC === undefined
        ? failed('temperature-idle', 'The board reports no temperature (no thermal zone).', { max: t.maxIdleTemperatureC })
        : atMost('temperature-idle', facts.idleC, t.maxIdleTemperatureC, '°C', 'Temperature at rest'),
  ];
  if (facts.stress.notInstalled) results.push(failed('temperature-load', notInstalled('stress', 'stress'), { max: t.maxLoadTemperatureC }));
  else if (facts.stress.exitCode !== 0) results.push(failed('temperature-load', `stress did not finish its ${facts.loadSeconds} s load (exit ${facts.stress.exitCode ?? 'killed'}).`, { max: t.maxLoadTemperatureC }));
  else if (noSensor && facts.loadC === undefined) results.push(skipped('temperature-load', `${facts.loadSeconds} s of full load on every core ran; this target has no temperature sensor to read after it.`));
  else if (facts.loadC === undefined) results.push(failed('temperature-load', 'The board reports no temperature after the load.', { max: t.maxLoadTemperatureC }));
  else results.push(atMost('temperature-load', facts.loadC, t.maxLoadTemperatureC, '°C', `Temperature after ${facts.loadSeconds} s of full load on every core`));
  if (facts.throttledDuringLoad !== undefined || facts.underVoltageDuringLoad !== undefined) {
    const problems = [facts.underVoltageDuringLoad ? 'the supply dropped below its voltage (under-voltage)' : undefined, facts.throttledDuringLoad ? 'the firmware slowed the processor down' : undefined].filter(Boolean);
    results.push({
      check: 'throttling',
      verdict: problems.length === 0 ? 'pass' : 'fail',
      measured: problems.length === 0,
      unit: '',
      threshold: { expected: true },
      reason: problems.length === 0 ? 'No throttling or under-voltage during the load.' : `During the load ${problems.join(' and ')}: check the power supply and the cooling.`,
    });
  }
  return results;
}

/** The warmest thermal zone, in °C; undefined when the board has none. */
export async function readWarmestZone(sysDir: string): Promise<number | undefined> {
  const zones = await readThermalZones(sysDir);
  return zones.length === 0 ? undefined : Math.max(...zones.map((z) => z.celsius));
}

/**
 * Reads the idle temperature, runs `stress` on every core for `seconds` (its own timeout
 * bounds it), sampling the Pi's power and throttling state every `sampleMs` meanwhile,
 * then reads the temperature under load before the cores cool down.
 */
export async function readThermal(sysDir: string, run: QaCommandRunner, seconds: number, sampleMs = 2000, cores = availableParallelism()): Promise<ThermalFacts> {
  const idleC = await readWarmestZone(sysDir);
  let throttled: boolean | undefined;
  let underVoltage: boolean | undefined;
  const sample = async () => {
    const [flags, alarm] = await Promise.all([readFirmwareThrottled(sysDir), readUnderVoltageAlarm(sysDir)]);
    if (flags !== undefined) {
      throttled = (throttled ?? false) || flags.now.throttled || flags.earlier.throttled;
      underVoltage = (underVoltage ?? false) || flags.now.underVoltage || flags.earlier.underVoltage;
    }
    if (alarm !== undefined) underVoltage = (underVoltage ?? false) || alarm;
  };
  let running = true;
  const sampler = (async () => {
    while (running) {
      await sample();
      await new Promise((resolve) => setTimeout(resolve, sampleMs));
    }
  })();
  // `stress`, not stress-ng: Debian's stress-ng depends on Mesa and LLVM (about 230 MB in every image, measured) for stressors QA never runs.
  const r = await run('stress', ['--cpu', String(cores), '--timeout', `${seconds}s`, '--quiet']).finally(() => {
    running = false;
  });
  const loadC = await readWarmestZone(sysDir);
  await sample();
  await sampler;
  return { idleC, loadC, loadSeconds: seconds, stress: { exitCode: r.code, notInstalled: r.notInstalled }, throttledDuringLoad: throttled, underVoltageDuringLoad: underVoltage };
}
