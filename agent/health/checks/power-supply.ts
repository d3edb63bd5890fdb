import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckResult, CheckStatus, HealthCheck, Metric } from './check.ts';

/**
 * Whether the power supply keeps up, where the board can tell: on a Raspberry Pi the
 * firmware watches the 5 V input and reports under-voltage (through the rpi_volt hwmon
 * sensor and, if asked, its throttled word), and a Pi 5 also learns what the supply
 * offers. A PC or a VM reports nothing of the kind, so this check gives no result there.
 */

/**
 * The firmware's throttled word, as `vcgencmd get_throttled` and the kernel's
 * `get_throttled` file show it (Raspberry Pi documentation, "get_throttled"): the low bits
 * say what is happening now, the same bits 16 higher that it happened since they were
 * last cleared.
 */
export const THROTTLED_BITS = {
  underVoltage: 0x1,
  frequencyCapped: 0x2,
  throttled: 0x4,
  softTemperatureLimit: 0x8,
} as const;

export type ThrottledCondition = keyof typeof THROTTLED_BITS;

export interface ThrottledFlags {
  now: Record<ThrottledCondition, boolean>;
  /** Seen since the bits were last cleared (see readFirmwareThrottled: not necessarily since boot). */
  earlier: Record<ThrottledCondition, boolean>;
}

/** Decodes the word; the file holds it in hex without `0x` (`50005`), vcgencmd with (`throttled=0x50005`). */
export function decodeThrottled(text: string): ThrottledFlags | undefined {
  const hex = text.trim().replace(/^throttled=/, '').replace(/^0x/i, '');
  if (!/^[0-9a-f]+$/i.test(hex)) return undefined;
  const word = Number.parseInt(hex, 16);
  const flags = (shift: number) =>
    Object.fromEntries(Object.entries(THROTTLED_BITS).map(([name, bit]) => [name, (word & (bit << shift)) !== 0])) as Record<ThrottledCondition, boolean>;
  return { now: flags(0), earlier: flags(16) };
}

/**
 * The firmware's throttled word from sysfs, without vcgencmd. The file belongs to the
 * Raspberry Pi kernel's raspberrypi-firmware driver (mainline kernels do not have it),
 * whose device is `soc:firmware` on a Pi 4 and sits elsewhere in a Pi 5's device tree, so
 * it is looked for through the driver's directory too. It shows the word the
 * raspberrypi-hwmon driver last fetched; that driver asks the firmware to clear the
 * "since" bits at every 2-second poll, so they mean "recently", and a caller that wants
 * "since boot" remembers what it saw. Current Raspberry Pi kernels mark the file
 * deprecated with a WARN_ONCE: the first read in a boot logs a kernel warning with a
 * backtrace and taints the kernel, which is why the checks read it only when asked.
 */
export async function readFirmwareThrottled(sysDir: string): Promise<ThrottledFlags | undefined> {
  const driverDir = join(sysDir, 'bus/platform/drivers/raspberrypi-firmware');
  const devices = (await readdir(driverDir).catch(() => [] as string[])).filter((n) => n.includes('firmware'));
  const candidates = [join(sysDir, 'devices/platform/soc/soc:firmware/get_throttled'), ...devices.map((d) => join(driverDir, d, 'get_throttled'))];
  for (const path of candidates) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    const flags = text === undefined ? undefined : decodeThrottled(text);
    if (flags) return flags;
  }
  return undefined;
}

/**
 * The raspberrypi-hwmon driver (`name` = `rpi_volt`) polls the firmware every 2 s and
 * sets `in0_lcrit_alarm` when it saw under-voltage in that interval: "now", for our
 * purpose. Undefined when the board has no such sensor.
 */
export async function readUnderVoltageAlarm(sysDir: string): Promise<boolean | undefined> {
  const dir = join(sysDir, 'class/hwmon');
  for (const hwmon of await readdir(dir).catch(() => [] as string[])) {
    const name = (await readFile(join(dir, hwmon, 'name'), 'utf8').catch(() => ''))?.trim();
    if (name !== 'rpi_volt') continue;
    const alarm = (await readFile(join(dir, hwmon, 'in0_lcrit_alarm'), 'utf8').catch(() => undefined))?.trim();
    if (alarm === '0' || alarm === '1') return alarm === '1';
  }
  return undefined;
}

/**
 * What the power supply told a Raspberry Pi 5 it can give, in mA: the firmware reports
 * what USB-C, USB-PD or PoE indicated in the device tree's /chosen/power/max_current, a
 * big-endian 32-bit cell (Raspberry Pi documentation, "chosen/power"). Absent elsewhere.
 */
export async function readSupplyMaxCurrent(sysDir: string): Promise<number | undefined> {
  const cell = await readFile(join(sysDir, 'firmware/devicetree/base/chosen/power/max_current')).catch(() => undefined);
  return cell?.length === 4 ? cell.readUInt32BE(0) : undefined;
}

export interface PowerSupplyFacts {
  /** The current the supply says it can give (Pi 5), in mA. */
  supplyMaxCurrentMa?: number;
  /** The firmware's throttled word, when the board has one. */
  throttled?: ThrottledFlags;
  /** The rpi_volt sensor's under-voltage alarm, when the board has one. */
  underVoltageAlarm?: boolean;
  /** Under-voltage seen by an earlier run since the agent started (the firmware's own "since" bits do not last). */
  underVoltageSeenBefore?: boolean;
}

/**
 * What under-voltage means for the family. Now: the board may reset or corrupt what it
 * is writing, so it is broken. Earlier since boot: a supply on the edge, which fails
 * under the next load (a backup, a photo import), so it needs attention soon. A Pi 5
 * with a drive needs a 5 A supply (the official 27 W one); one that offers less works
 * until the box is busy, so it needs attention too.
 */
export const DEFAULT_POWER_SUPPLY_THRESHOLDS = {
  underVoltageNow: 'unhealthy' as CheckStatus,
  underVoltageSinceBoot: 'degraded' as CheckStatus,
  minSupplyCurrentMa: 5000,
  weakSupply: 'degraded' as CheckStatus,
};

export type PowerSupplyThresholds = typeof DEFAULT_POWER_SUPPLY_THRESHOLDS;

const POWER_SUPPLY_ACTION =
  'Use the official Raspberry Pi 27 W USB-C power supply (5 V, 5 A) plugged straight into the wall, not a phone charger, a long cable or a USB hub.';

export function evaluatePowerSupply(facts: PowerSupplyFacts, thresholds: PowerSupplyThresholds = DEFAULT_POWER_SUPPLY_THRESHOLDS): CheckResult[] {
  if (facts.throttled === undefined && facts.underVoltageAlarm === undefined && facts.supplyMaxCurrentMa === undefined) return [];
  const now = facts.throttled?.now.underVoltage === true || facts.underVoltageAlarm === true;
  const sinceBoot = now || facts.throttled?.earlier.underVoltage === true || facts.underVoltageSeenBefore === true;
  const help = 'The power supply gives too little voltage (1) or enough (0): now, and at any time since boot';
  const metrics: Metric[] =
    facts.throttled === undefined && facts.underVoltageAlarm === undefined
      ? []
      : [
          { name: 'memu_under_voltage', help, type: 'gauge', labels: { when: 'now' }, value: now ? 1 : 0 },
          { name: 'memu_under_voltage', help, type: 'gauge', labels: { when: 'since_boot' }, value: sinceBoot ? 1 : 0 },
        ];
  if (facts.supplyMaxCurrentMa !== undefined) {
    metrics.push({ name: 'memu_power_supply_max_current_amperes', help: 'The current the power supply says it can give', type: 'gauge', value: facts.supplyMaxCurrentMa / 1000 });
  }
  // What needs the official supply, worst first.
  const problem = (status: CheckStatus, reason: string): CheckResult[] => [{ check: 'power-supply', status, reason, action: POWER_SUPPLY_ACTION, metrics }];
  if (now) {
    return problem(
      thresholds.underVoltageNow,
      'The power supply is not giving the box enough power right now (under-voltage): the box slows down and can lose what it is saving or switch itself off.',
    );
  }
  if (sinceBoot) {
    return problem(
      thresholds.underVoltageSinceBoot,
      'The power supply could not give the box enough power at least once since it started (under-voltage); it is enough right now, but may not be the next time the box works hard.',
    );
  }
  const max = facts.supplyMaxCurrentMa;
  if (max !== undefined && max < thresholds.minSupplyCurrentMa) {
    return problem(
      thresholds.weakSupply,
      `The power supply says it can give ${formatAmperes(max)}; the box needs ${formatAmperes(thresholds.minSupplyCurrentMa)} to run its drive and USB devices when it is busy.`,
    );
  }
  return [{ check: 'power-supply', status: 'ok', reason: `The power supply gives the box enough power${max === undefined ? '' : ` (it offers ${formatAmperes(max)})`}.`, metrics }];
}

function formatAmperes(ma: number): string {
  return `${(ma / 1000).toFixed(1)} A`;
}

export interface PowerSupplyCheckOptions {
  sysDir?: string;
  /** Also read the firmware's get_throttled file (see readFirmwareThrottled for its cost); the rpi_volt sensor alone is enough. */
  firmwareThrottled?: boolean;
  intervalMs?: number;
}

/**
 * Reads the Pi's power facts every 60 s (the firmware's throttled word keeps "has occurred"
 * bits, so a dip between reads is still seen); remembers under-voltage seen, so "since boot"
 * survives the firmware clearing its bits.
 */
export function createPowerSupplyCheck(opts: PowerSupplyCheckOptions = {}): HealthCheck {
  const sysDir = opts.sysDir ?? '/sys';
  let seen = false;
  return {
    name: 'power-supply',
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      const [throttled, underVoltageAlarm, supplyMaxCurrentMa] = await Promise.all([
        opts.firmwareThrottled ? readFirmwareThrottled(sysDir) : undefined,
        readUnderVoltageAlarm(sysDir),
        readSupplyMaxCurrent(sysDir),
      ]);
      const results = evaluatePowerSupply({ throttled, underVoltageAlarm, supplyMaxCurrentMa, underVoltageSeenBefore: seen });
      if (throttled?.now.underVoltage || throttled?.earlier.underVoltage || underVoltageAlarm) seen = true;
      return results;
    },
  };
}
