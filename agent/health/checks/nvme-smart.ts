import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { runCommandOutcome, type CommandOutcome } from '../../../shared/process/run-command.ts';
import { worstStatus, type CheckResult, type CheckStatus, type HealthCheck, type Metric } from './check.ts';

/**
 * The NVMe drive's own view of its health, from its SMART / Health Information log read
 * with `smartctl --json=c -a /dev/nvmeN` (smartmontools): critical warnings, wear, media
 * errors, spare blocks and temperature against the drive's own limits. Boards without
 * NVMe (the VM, a Pi booting from SD) give no result.
 */

/** The critical-warning bits of the SMART / Health log (NVMe base specification, log page 02h, byte 0). */
export const CRITICAL_WARNING_BITS = [
  { bit: 0x01, status: 'unhealthy', words: 'its spare blocks have fallen below its safe minimum' },
  // Heat passes; the temperature itself is judged below against the drive's limits.
  { bit: 0x02, status: 'degraded', words: 'its temperature is outside its safe range' },
  { bit: 0x04, status: 'unhealthy', words: 'its reliability is degraded by media or internal errors' },
  { bit: 0x08, status: 'unhealthy', words: 'it has made itself read-only to protect the data' },
  { bit: 0x10, status: 'unhealthy', words: 'its power-loss backup has failed' },
  { bit: 0x20, status: 'unhealthy', words: 'its persistent memory region is unreliable' },
] as const satisfies readonly { bit: number; status: CheckStatus; words: string }[];

export interface NvmeHealth {
  /** The controller's name in /sys/class/nvme (`nvme0`). */
  controller: string;
  model?: string;
  criticalWarning: number;
  temperatureCelsius?: number;
  /** The drive's own Warning / Critical Composite Temperature thresholds (WCTEMP, CCTEMP). */
  warningCelsius?: number;
  criticalCelsius?: number;
  /** The drive's estimate of its life used, in percent of its rated endurance; may pass 100. */
  percentageUsed: number;
  availableSparePercent: number;
  availableSpareThresholdPercent: number;
  mediaErrors: number;
  unsafeShutdowns?: number;
  powerOnHours?: number;
}

/**
 * Wear: percentage used is the drive's own estimate against its rated endurance (NVMe base
 * specification); at 80 % there is time to buy a replacement, at 100 % the maker no longer
 * vouches for it. Spare: a margin above the drive's own threshold (which trips the critical
 * warning) warns before it does. Any media error means data that could not be read back.
 * Temperature limits are the drive's own; when neither smartctl nor the kernel gives them,
 * 70 / 80 °C, the common consumer drives' warning and critical values.
 */
export const DEFAULT_NVME_THRESHOLDS = {
  wearDegradedPercent: 80,
  wearUnhealthyPercent: 100,
  spareMarginPercent: 10,
  mediaErrorsDegraded: 1,
  fallbackWarningCelsius: 70,
  fallbackCriticalCelsius: 80,
};

export type NvmeThresholds = typeof DEFAULT_NVME_THRESHOLDS;

const REPLACE_ACTION = 'Make sure the family\'s backup is complete and recent, then replace the drive.';
const WATCH_ACTION = 'Make sure the family\'s backup is complete and recent; replace the drive if this number keeps growing.';
const COOL_ACTION = 'Give the drive air: keep the box out of closed cupboards, keep its vents free, and fit a heatsink on the drive if it has none.';

interface Finding {
  status: CheckStatus;
  sentence: string;
  action: string;
}

export function evaluateNvmeSmart(drives: readonly NvmeHealth[], thresholds: NvmeThresholds = DEFAULT_NVME_THRESHOLDS): CheckResult[] {
  return drives.map((d) => evaluateDrive(d, thresholds));
}

function evaluateDrive(d: NvmeHealth, t: NvmeThresholds): CheckResult {
  const findings: Finding[] = [];
  const temperature = temperatureFinding(d, t);
  for (const w of CRITICAL_WARNING_BITS) {
    // The temperature bit says less than the reading judged against the drive's limits.
    if (w.bit === 0x02 && temperature) continue;
    if (d.criticalWarning & w.bit) findings.push({ status: w.status, sentence: `the drive reports that ${w.words}`, action: w.status === 'unhealthy' ? REPLACE_ACTION : COOL_ACTION });
  }
  const unknown = d.criticalWarning & ~CRITICAL_WARNING_BITS.reduce((all, w) => all | w.bit, 0);
  if (unknown) findings.push({ status: 'unhealthy', sentence: `the drive reports a critical warning (0x${unknown.toString(16)})`, action: REPLACE_ACTION });

  if (d.percentageUsed >= t.wearUnhealthyPercent) {
    findings.push({ status: 'unhealthy', sentence: `it is worn out: ${d.percentageUsed} % of its rated life is used`, action: REPLACE_ACTION });
  } else if (d.percentageUsed >= t.wearDegradedPercent) {
    findings.push({ status: 'degraded', sentence: `it is wearing out: ${d.percentageUsed} % of its rated life is used`, action: REPLACE_ACTION });
  }

  // The drive's own critical-warning bit 0 already covers spare at or below its threshold.
  if (!(d.criticalWarning & 0x01) && d.availableSparePercent < d.availableSpareThresholdPercent + t.spareMarginPercent) {
    const status: CheckStatus = d.availableSparePercent <= d.availableSpareThresholdPercent ? 'unhealthy' : 'degraded';
    findings.push({
      status,
      sentence: `it has ${d.availableSparePercent} % of its spare blocks left (it needs at least ${d.availableSpareThresholdPercent} %)`,
      action: REPLACE_ACTION,
    });
  }

  if (d.mediaErrors >= t.mediaErrorsDegraded) {
    findings.push({ status: 'degraded', sentence: `it could not read back stored data ${d.mediaErrors} ${d.mediaErrors === 1 ? 'time' : 'times'} (media errors)`, action: WATCH_ACTION });
  }

  if (temperature) findings.push(temperature);

  const warning = d.warningCelsius ?? t.fallbackWarningCelsius;
  const name = `The NVMe drive${d.model ? ` (${d.model}, ${d.controller})` : ` ${d.controller}`}`;
  const metrics = nvmeMetrics(d);
  const check = `nvme-smart-${d.controller}`;
  if (findings.length === 0) {
    const temp = d.temperatureCelsius === undefined ? '' : `, ${d.temperatureCelsius} °C (its warning is ${warning} °C)`;
    return { check, status: 'ok', reason: `${name} is healthy: ${d.percentageUsed} % of its rated life used, no media errors${temp}.`, metrics };
  }
  const status = findings.reduce<CheckStatus>((s, f) => worstStatus(s, f.status), 'ok');
  const worst = findings.find((f) => f.status === status) ?? findings[0]!;
  return { check, status, reason: `${name} needs attention: ${findings.map((f) => f.sentence).join('; ')}.`, action: worst.action, metrics };
}

function temperatureFinding(d: NvmeHealth, t: NvmeThresholds): Finding | undefined {
  if (d.temperatureCelsius === undefined) return undefined;
  const warning = d.warningCelsius ?? t.fallbackWarningCelsius;
  const critical = d.criticalCelsius ?? t.fallbackCriticalCelsius;
  if (d.temperatureCelsius >= critical) {
    return { status: 'unhealthy', sentence: `it is at ${d.temperatureCelsius} °C, at or above its critical limit of ${critical} °C`, action: COOL_ACTION };
  }
  if (d.temperatureCelsius >= warning) {
    return { status: 'degraded', sentence: `it is at ${d.temperatureCelsius} °C, at or above its warning limit of ${warning} °C`, action: COOL_ACTION };
  }
  return undefined;
}

function nvmeMetrics(d: NvmeHealth): Metric[] {
  const labels = { device: d.controller };
  const m = (name: string, help: string, value: number, type: Metric['type'] = 'gauge'): Metric => ({ name, help, type, labels, value });
  const metrics = [
    m('memu_nvme_critical_warning', 'The NVMe critical warning bits (0 when the drive reports none)', d.criticalWarning),
    m('memu_nvme_percentage_used', "The drive's estimate of its rated life used, in percent", d.percentageUsed),
    m('memu_nvme_available_spare_percent', 'Spare blocks left, in percent', d.availableSparePercent),
    m('memu_nvme_available_spare_threshold_percent', "The drive's own minimum of spare blocks, in percent", d.availableSpareThresholdPercent),
    m('memu_nvme_media_errors_total', 'Unrecovered data integrity errors over the drive\'s life', d.mediaErrors, 'counter'),
  ];
  if (d.temperatureCelsius !== undefined) metrics.push(m('memu_nvme_temperature_celsius', 'The composite temperature of the drive', d.temperatureCelsius));
  if (d.unsafeShutdowns !== undefined) metrics.push(m('memu_nvme_unsafe_shutdowns_total', 'Times the drive lost power without being told first', d.unsafeShutdowns, 'counter'));
  if (d.powerOnHours !== undefined) metrics.push(m('memu_nvme_power_on_hours', 'Hours the drive has been powered on', d.powerOnHours));
  return metrics;
}

/**
 * The facts of one drive from smartctl's JSON. The Warning / Critical Composite
 * Temperature thresholds appear in smartctl's JSON only from smartmontools 7.5
 * (`nvme_composite_temperature_threshold`); Debian 13 ships 7.4, so `limits` from the
 * kernel's nvme hwmon fill the gap.
 */
export function parseSmartctlNvme(controller: string, json: string, limits: { warningCelsius?: number; criticalCelsius?: number } = {}): NvmeHealth {
  let doc: SmartctlJson;
  try {
    doc = JSON.parse(json) as SmartctlJson;
  } catch {
    throw new Error(`smartctl's output for /dev/${controller} is not JSON (smartmontools 7.0 or later is needed): ${json.slice(0, 200)}`);
  }
  const log = doc.nvme_smart_health_information_log;
  if (!log) {
    const messages = (doc.smartctl?.messages ?? []).map((m) => m.string).join('; ');
    throw new Error(`smartctl gave no SMART / Health log for /dev/${controller}${messages ? `: ${messages}` : ''}`);
  }
  const number = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
  return {
    controller,
    model: doc.model_name?.trim() || undefined,
    criticalWarning: number(log.critical_warning) ?? 0,
    temperatureCelsius: number(log.temperature) ?? number(doc.temperature?.current),
    warningCelsius: number(doc.nvme_composite_temperature_threshold?.warning) ?? number(doc.temperature?.op_limit_max) ?? limits.warningCelsius,
    criticalCelsius: number(doc.nvme_composite_temperature_threshold?.critical) ?? number(doc.temperature?.critical_limit_max) ?? limits.criticalCelsius,
    percentageUsed: number(log.percentage_used) ?? 0,
    availableSparePercent: number(log.available_spare) ?? 100,
    availableSpareThresholdPercent: number(log.available_spare_threshold) ?? 0,
    mediaErrors: number(log.media_errors) ?? 0,
    unsafeShutdowns: number(log.unsafe_shutdowns),
    powerOnHours: number(log.power_on_hours),
  };
}

interface SmartctlJson {
  smartctl?: { exit_status?: number; messages?: { string: string; severity?: string }[] };
  model_name?: string;
  temperature?: { current?: number; op_limit_max?: number; critical_limit_max?: number };
  nvme_composite_temperature_threshold?: { warning?: number; critical?: number };
  nvme_smart_health_information_log?: Record<string, unknown>;
}

/** The drive's limits as the kernel's nvme hwmon gives them: temp1_max (WCTEMP unless changed) and temp1_crit (CCTEMP). */
export async function readNvmeHwmonLimits(sysDir: string, controller: string): Promise<{ warningCelsius?: number; criticalCelsius?: number }> {
  const dir = join(sysDir, 'class/nvme', controller);
  const hwmon = (await readdir(dir).catch(() => [] as string[])).find((n) => /^hwmon\d+$/.test(n));
  if (!hwmon) return {};
  const read = async (file: string) => {
    const milli = Number((await readFile(join(dir, hwmon, file), 'utf8').catch(() => ''))?.trim() || Number.NaN);
    // The kernel gives millidegrees; an unset threshold reads as absent or absurd.
    return Number.isFinite(milli) && milli > 0 && milli < 200_000 ? Math.round(milli / 1000) : undefined;
  };
  return { warningCelsius: await read('temp1_max'), criticalCelsius: await read('temp1_crit') };
}

export async function listNvmeControllers(sysDir: string): Promise<string[]> {
  const names = await readdir(join(sysDir, 'class/nvme')).catch(() => [] as string[]);
  return names.filter((n) => /^nvme\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
}

export type CommandRunner = (cmd: string, args: readonly string[]) => Promise<Pick<CommandOutcome, 'code' | 'stdout' | 'stderr' | 'notInstalled' | 'startError'>>;

export interface NvmeSmartCheckOptions {
  sysDir?: string;
  devDir?: string;
  run?: CommandRunner;
  log?: Pick<Logger, 'warn'>;
  intervalMs?: number;
}

/**
 * Reads every NVMe controller's SMART log once an hour: smartctl is a process start and a
 * few admin commands, and wear moves over months. smartctl's exit code is a bit mask
 * that is non-zero for a failing drive too, so its JSON decides, not the code.
 */
export function createNvmeSmartCheck(opts: NvmeSmartCheckOptions = {}): HealthCheck {
  const sysDir = opts.sysDir ?? '/sys';
  const devDir = opts.devDir ?? '/dev';
  const run = opts.run ?? runCommandOutcome;
  let toldMissing = false;
  return {
    name: 'nvme-smart',
    intervalMs: opts.intervalMs ?? 60 * 60_000,
    async run() {
      const drives: NvmeHealth[] = [];
      for (const controller of await listNvmeControllers(sysDir)) {
        const r = await run('smartctl', ['--json=c', '-a', join(devDir, controller)]);
        if (r.notInstalled) {
          if (!toldMissing) opts.log?.warn({ controller }, 'smartctl is not installed, so the NVMe drive\'s health is not checked');
          toldMissing = true;
          return [];
        }
        if (r.startError !== undefined) throw new Error(`cannot run smartctl: ${r.startError}`);
        drives.push(parseSmartctlNvme(controller, r.stdout, await readNvmeHwmonLimits(sysDir, controller)));
      }
      return evaluateNvmeSmart(drives);
    },
  };
}
