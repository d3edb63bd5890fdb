import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckResult, CheckStatus, HealthCheck, Metric } from './check.ts';
import { readFirmwareThrottled, type ThrottledCondition, type ThrottledFlags } from './power-supply.ts';

/**
 * How hot the box runs and whether it slows itself down to cope. Temperatures come from
 * the kernel's thermal zones (/sys/class/thermal/thermal_zone*: `type`, `temp` in
 * millidegrees), read directly rather than through systeminformation's cpuTemperature:
 * that runs shell commands (one synchronously, blocking the event loop) on every call,
 * reads fixed paths that tests cannot point at fixtures, and returns one number without
 * the zone it came from. A VM has no thermal zone and gets no result.
 */

export interface ThermalZone {
  /** The zone's number, as node-exporter labels it (`thermal_zone3` → `3`). */
  zone: string;
  /** The kernel's name for the sensor: `cpu-thermal` (Pi), `x86_pkg_temp`, `acpitz`. */
  type: string;
  celsius: number;
}

export interface TemperatureFacts {
  zones: ThermalZone[];
  /** The Raspberry Pi firmware's throttled word; absent on other boards. */
  throttled?: ThrottledFlags;
  /** Conditions an earlier run saw since the agent started (the firmware's own "since" bits do not last). */
  throttledSeenBefore?: ReadonlySet<ThrottledCondition>;
}

/**
 * A Raspberry Pi's firmware progressively slows the Arm cores between 80 and 85 °C and
 * slows the GPU too at 85 °C, its limit on every model (Raspberry Pi documentation,
 * "Frequency management and thermal control"). A PC's processor throttles nearer 100 °C
 * (Intel's TjMax), so the same numbers leave it a margin: a box that lives at 80 °C has a
 * blocked vent or a dead fan either way.
 */
export const DEFAULT_TEMPERATURE_THRESHOLDS = {
  degradedCelsius: 80,
  unhealthyCelsius: 85,
  /** Slowing down right now costs the family speed, not data. */
  throttlingNow: 'degraded' as CheckStatus,
};

export type TemperatureThresholds = typeof DEFAULT_TEMPERATURE_THRESHOLDS;

const COOLING_ACTION = 'Give the box air: take it out of closed cupboards and away from heaters, keep its vents free of dust, and check that its fan turns.';
const POWER_ACTION = 'Use the official Raspberry Pi 27 W USB-C power supply (5 V, 5 A) plugged straight into the wall.';

/** Millidegrees as the kernel writes them; sensors that are absent or broken report nonsense (0, -273000, 255000). */
export function parseMillidegrees(text: string | undefined): number | undefined {
  const milli = Number(text?.trim());
  if (!text?.trim() || !Number.isFinite(milli) || milli <= 0 || milli > 150_000) return undefined;
  return Math.round(milli / 100) / 10;
}

export async function readThermalZones(sysDir: string): Promise<ThermalZone[]> {
  const dir = join(sysDir, 'class/thermal');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^thermal_zone\d+$/.test(n)).sort((a, b) => zoneNumber(a) - zoneNumber(b));
  const zones = await Promise.all(
    names.map(async (name) => {
      const read = (file: string) => readFile(join(dir, name, file), 'utf8').catch(() => undefined);
      const [type, temp] = await Promise.all([read('type'), read('temp')]);
      const celsius = parseMillidegrees(temp);
      return celsius === undefined ? undefined : { zone: String(zoneNumber(name)), type: type?.trim() || name, celsius };
    }),
  );
  return zones.filter((z): z is ThermalZone => z !== undefined);
}

const zoneNumber = (name: string) => Number(name.replace('thermal_zone', ''));

const CONDITION_WORDS: Record<Exclude<ThrottledCondition, 'underVoltage'>, string> = {
  throttled: 'throttled',
  frequencyCapped: 'frequency capped',
  softTemperatureLimit: 'soft temperature limit',
};
const METRIC_CONDITION: Record<Exclude<ThrottledCondition, 'underVoltage'>, string> = {
  throttled: 'throttled',
  frequencyCapped: 'frequency_capped',
  softTemperatureLimit: 'soft_temperature_limit',
};
const SLOWING = Object.keys(CONDITION_WORDS) as (keyof typeof CONDITION_WORDS)[];

export function evaluateTemperature(facts: TemperatureFacts, thresholds: TemperatureThresholds = DEFAULT_TEMPERATURE_THRESHOLDS): CheckResult[] {
  const results: CheckResult[] = [];
  const temperature = evaluateZones(facts.zones, thresholds);
  if (temperature) results.push(temperature);
  if (facts.throttled) results.push(evaluateThrottling(facts.throttled, facts.throttledSeenBefore ?? new Set(), thresholds));
  return results;
}

function evaluateZones(zones: readonly ThermalZone[], t: TemperatureThresholds): CheckResult | undefined {
  if (zones.length === 0) return undefined;
  const warmest = zones.reduce((a, b) => (b.celsius > a.celsius ? b : a));
  const metrics: Metric[] = zones.map((z) => ({
    name: 'node_thermal_zone_temp',
    help: 'Zone temperature in Celsius',
    type: 'gauge',
    labels: { zone: z.zone, type: z.type },
    value: z.celsius,
  }));
  const where = `${formatCelsius(warmest.celsius)} (${warmest.type})`;
  if (warmest.celsius >= t.unhealthyCelsius) {
    return {
      check: 'temperature',
      status: 'unhealthy',
      reason: `The box is too hot: ${where}, at or above ${t.unhealthyCelsius} °C, where it slows itself down hard to avoid damage.`,
      action: COOLING_ACTION,
      metrics,
    };
  }
  if (warmest.celsius >= t.degradedCelsius) {
    return {
      check: 'temperature',
      status: 'degraded',
      reason: `The box runs hot: ${where}, at or above ${t.degradedCelsius} °C, where it starts to slow itself down.`,
      action: COOLING_ACTION,
      metrics,
    };
  }
  return { check: 'temperature', status: 'ok', reason: `The box's temperature is fine: ${where}, below ${t.degradedCelsius} °C.`, metrics };
}

function evaluateThrottling(flags: ThrottledFlags, seenBefore: ReadonlySet<ThrottledCondition>, t: TemperatureThresholds): CheckResult {
  const now = SLOWING.filter((c) => flags.now[c]);
  const sinceBoot = SLOWING.filter((c) => flags.now[c] || flags.earlier[c] || seenBefore.has(c));
  const metrics: Metric[] = SLOWING.flatMap((c) => [
    { name: 'memu_throttled', help: 'The Raspberry Pi firmware slows the processor down (1) or not (0): now, and at any time since boot', type: 'gauge' as const, labels: { condition: METRIC_CONDITION[c], when: 'now' }, value: now.includes(c) ? 1 : 0 },
    { name: 'memu_throttled', help: 'The Raspberry Pi firmware slows the processor down (1) or not (0): now, and at any time since boot', type: 'gauge' as const, labels: { condition: METRIC_CONDITION[c], when: 'since_boot' }, value: sinceBoot.includes(c) ? 1 : 0 },
  ]);
  const words = (cs: readonly (keyof typeof CONDITION_WORDS)[]) => cs.map((c) => CONDITION_WORDS[c]).join(', ');
  if (now.length > 0) {
    // The firmware slows down for heat and for a weak supply alike; the bits say which.
    const power = flags.now.underVoltage;
    return {
      check: 'throttling',
      status: t.throttlingNow,
      reason: `The processor is slowing itself down right now (${words(now)}) ${power ? 'because the power supply gives too little power' : 'to stay cool'}, so the box answers more slowly.`,
      action: power ? POWER_ACTION : COOLING_ACTION,
      metrics,
    };
  }
  if (sinceBoot.length > 0) {
    return {
      check: 'throttling',
      status: 'ok',
      reason: `The processor runs at full speed now; it slowed itself down at least once since the box started (${words(sinceBoot)}).`,
      metrics,
    };
  }
  return { check: 'throttling', status: 'ok', reason: 'The processor runs at full speed; it has not slowed itself down since the box started.', metrics };
}

const formatCelsius = (c: number) => `${Number.isInteger(c) ? c : c.toFixed(1)} °C`;

export interface TemperatureCheckOptions {
  sysDir?: string;
  /**
   * Also read the Pi firmware's throttled word, for the `throttling` result. Off by default:
   * on current Raspberry Pi kernels the first read in a boot logs a kernel warning and
   * taints the kernel (see readFirmwareThrottled), and the temperature alone already says
   * when the firmware slows down for heat (from 80 °C).
   */
  firmwareThrottled?: boolean;
  intervalMs?: number;
}

/** Reads the thermal zones (and, when asked, the Pi's throttled word) every 60 s: a few small sysfs reads; a zone heats over minutes. */
export function createTemperatureCheck(opts: TemperatureCheckOptions = {}): HealthCheck {
  const sysDir = opts.sysDir ?? '/sys';
  const seen = new Set<ThrottledCondition>();
  return {
    name: 'temperature',
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      const [zones, throttled] = await Promise.all([readThermalZones(sysDir), opts.firmwareThrottled ? readFirmwareThrottled(sysDir) : undefined]);
      const results = evaluateTemperature({ zones, throttled, throttledSeenBefore: new Set(seen) });
      for (const c of SLOWING) if (throttled?.now[c] || throttled?.earlier[c]) seen.add(c);
      return results;
    },
  };
}
