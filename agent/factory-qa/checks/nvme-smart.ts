import { join } from 'node:path';
import { failed, notInstalled, skipped, type QaCheckOutcome, type QaCommandRunner } from './qa-check.ts';

/**
 * The drive's own verdict on itself, from its SMART / Health log: through smartctl's JSON
 * (smartmontools 7.x: `smart_status.passed` and `nvme_smart_health_information_log`) or,
 * where the image has only nvme-cli, `nvme smart-log -o json` (flat keys: `avail_spare`,
 * `spare_thresh`, `percent_used`, `temperature` in kelvin). A new drive has no critical
 * warning, no media error, its spare intact and almost none of its rated life used.
 */
export interface SmartFacts {
  drive: string;
  source: 'smartctl' | 'nvme-cli';
  /** smartctl's overall assessment; nvme-cli has none. */
  passed?: boolean;
  criticalWarning: number;
  percentUsed: number;
  availableSparePercent: number;
  spareThresholdPercent: number;
  mediaErrors: number;
  temperatureC?: number;
}

export type SmartReading = { ok: true; facts: SmartFacts } | { ok: false; problem: string } | { ok: false; noDrive: true };

const num = (v: unknown): number | undefined => {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  // nvme-cli prints its 128-bit counters as strings in some versions ("1,234").
  if (typeof v === 'string' && /^[\d,]+$/.test(v)) return Number(v.replace(/,/g, ''));
  return undefined;
};

export function parseSmartctlJson(drive: string, text: string): SmartReading {
  let doc: { smart_status?: { passed?: boolean }; nvme_smart_health_information_log?: Record<string, unknown>; smartctl?: { messages?: { string: string }[] } };
  try {
    doc = JSON.parse(text) as typeof doc;
  } catch {
    return { ok: false, problem: `smartctl's output for ${drive} is not JSON (smartmontools 7.0 or later is needed)` };
  }
  const log = doc.nvme_smart_health_information_log;
  if (!log) {
    const messages = (doc.smartctl?.messages ?? []).map((m) => m.string).join('; ');
    return { ok: false, problem: `smartctl gave no SMART / Health log for ${drive}${messages ? `: ${messages}` : ''}` };
  }
  return {
    ok: true,
    facts: {
      drive,
      source: 'smartctl',
      passed: doc.smart_status?.passed,
      criticalWarning: num(log.critical_warning) ?? 0,
      percentUsed: num(log.percentage_used) ?? 0,
      availableSparePercent: num(log.available_spare) ?? 100,
      spareThresholdPercent: num(log.available_spare_threshold) ?? 0,
      mediaErrors: num(log.media_errors) ?? 0,
      temperatureC: num(log.temperature),
    },
  };
}

export function parseNvmeCliSmartLog(drive: string, text: string): SmartReading {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { ok: false, problem: `nvme smart-log's output for ${drive} is not JSON` };
  }
  // `--human-readable` turns critical_warning into an object with its value inside.
  const warning = typeof doc.critical_warning === 'object' && doc.critical_warning !== null ? (doc.critical_warning as Record<string, unknown>).value : doc.critical_warning;
  const kelvin = num(doc.temperature ?? doc.Temperature);
  const spare = num(doc.avail_spare);
  if (num(warning) === undefined || spare === undefined) return { ok: false, problem: `nvme smart-log's output for ${drive} has no critical_warning or avail_spare` };
  return {
    ok: true,
    facts: {
      drive,
      source: 'nvme-cli',
      criticalWarning: num(warning)!,
      percentUsed: num(doc.percent_used) ?? 0,
      availableSparePercent: spare,
      spareThresholdPercent: num(doc.spare_thresh) ?? 0,
      mediaErrors: num(doc.media_errors) ?? 0,
      temperatureC: kelvin === undefined ? undefined : kelvin - 273,
    },
  };
}

export function evaluateSmart(reading: SmartReading, t: { nvmeRequired: boolean; maxNvmePercentUsed: number }): QaCheckOutcome[] {
  const threshold = { max: t.maxNvmePercentUsed };
  if (!reading.ok) {
    if ('noDrive' in reading) return [t.nvmeRequired ? failed('nvme-smart', 'No NVMe drive to read SMART health from.', threshold) : skipped('nvme-smart', 'The profile has no NVMe drive.')];
    return [failed('nvme-smart', `The drive's SMART health could not be read: ${reading.problem}.`, threshold)];
  }
  const f = reading.facts;
  const problems = [
    f.passed === false ? 'smartctl rates the drive as failing' : undefined,
    f.criticalWarning !== 0 ? `it reports critical warning 0x${f.criticalWarning.toString(16).padStart(2, '0')}` : undefined,
    f.mediaErrors > 0 ? `it has ${f.mediaErrors} media errors` : undefined,
    // Below, as the NVMe specification's critical warning bit 0 has it (QEMU's emulated drive reports 0 % against 0 %).
    f.availableSparePercent < f.spareThresholdPercent ? `its spare is ${f.availableSparePercent} %, below its threshold of ${f.spareThresholdPercent} %` : undefined,
    f.percentUsed > t.maxNvmePercentUsed ? `it has used ${f.percentUsed} % of its rated life (a new drive: at most ${t.maxNvmePercentUsed} %)` : undefined,
  ].filter((p): p is string => p !== undefined);
  const base = { check: 'nvme-smart', measured: f.percentUsed, unit: '%', threshold };
  if (problems.length > 0) return [{ ...base, verdict: 'fail', reason: `The drive ${f.drive} is not fit to ship: ${problems.join('; ')}.` }];
  return [{ ...base, verdict: 'pass', reason: `The drive ${f.drive} reports itself healthy (${f.source}): no warning, no media error, ${f.availableSparePercent} % spare, ${f.percentUsed} % of its life used.` }];
}

/** smartctl first (the health checks use it too), nvme-cli when the image has only that. */
export async function readSmart(devDir: string, controllers: readonly string[], run: QaCommandRunner): Promise<SmartReading> {
  const controller = controllers[0];
  if (!controller) return { ok: false, noDrive: true };
  const device = join(devDir, controller);
  const smartctl = await run('smartctl', ['--json=c', '-a', device]);
  // smartctl's exit code is a bit mask that is non-zero for a failing drive too: its JSON decides.
  if (!smartctl.notInstalled) return parseSmartctlJson(device, smartctl.stdout);
  const nvme = await run('nvme', ['smart-log', '-o', 'json', device]);
  if (nvme.notInstalled) return { ok: false, problem: `${notInstalled('smartctl', 'smartmontools')} nvme-cli is missing too` };
  if (nvme.code !== 0) return { ok: false, problem: `nvme smart-log failed (exit ${nvme.code}): ${nvme.stderr.trim()}` };
  return parseNvmeCliSmartLog(device, nvme.stdout);
}
