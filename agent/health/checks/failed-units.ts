import { runCommandOutcome, type CommandOutcome } from '../../../shared/process/run-command.ts';
import type { CheckResult, HealthCheck, Metric } from './check.ts';

export interface FailedUnit {
  /** `memu-agent.service`, `var-lib-memu.mount`. */
  unit: string;
  load: string;
  active: string;
  sub: string;
  description: string;
}

export interface FailedUnitsFacts {
  failed: FailedUnit[];
}

export interface FailedUnitsThresholds {
  /** Units whose failure is expected or reported elsewhere; none by default. */
  ignore: readonly string[];
}

/**
 * Any failed unit is worth the owner's attention: on an appliance every unit was put there
 * on purpose, and systemd has already given up restarting it. There is no count threshold.
 */
export const DEFAULT_FAILED_UNITS_THRESHOLDS: FailedUnitsThresholds = { ignore: [] };

/** Judges systemd's failed units: any (not ignored) is degraded, named in the reason. */
export function evaluateFailedUnits(facts: FailedUnitsFacts, thresholds: FailedUnitsThresholds = DEFAULT_FAILED_UNITS_THRESHOLDS): CheckResult[] {
  const failed = facts.failed.filter((u) => !thresholds.ignore.includes(u.unit));
  const metrics: Metric[] = [
    { name: 'memu_systemd_units_failed', help: 'systemd units in the failed state.', type: 'gauge', value: failed.length },
    ...failed.map(
      (u): Metric => ({
        name: 'node_systemd_unit_state',
        help: 'Systemd unit',
        type: 'gauge',
        labels: { name: u.unit, state: 'failed', type: unitType(u.unit) },
        value: 1,
      }),
    ),
  ];
  if (failed.length === 0) return [{ check: 'failed-units', status: 'ok', reason: 'Every system service is running or finished normally.', metrics }];
  const names = failed.map((u) => (u.description && u.description !== u.unit ? `${u.unit} (${u.description})` : u.unit));
  const reason = failed.length === 1 ? `A system service failed: ${names[0]}.` : `${failed.length} system services failed: ${names.join(', ')}.`;
  return [
    {
      check: 'failed-units',
      status: 'degraded',
      reason,
      action: `Restart the box; if ${failed.length === 1 ? 'it fails' : 'they fail'} again, ask for help and mention ${failed.length === 1 ? 'its name' : 'their names'}.`,
      metrics,
    },
  ];
}

/** `docker.service` → `service`. */
function unitType(unit: string): string {
  return unit.slice(unit.lastIndexOf('.') + 1);
}

// ---- reading the device ----

/**
 * `systemctl list-units --output=json`: an array of objects keyed by the table's columns
 * (unit, load, active, sub, description; job only when one is queued). Older systemctl
 * prints the table instead: with --plain --no-legend, one unit per line, four words and
 * the description.
 */
export function parseFailedUnits(stdout: string): FailedUnit[] {
  const text = stdout.trim();
  if (text === '') return [];
  if (text.startsWith('[')) {
    const rows = JSON.parse(text) as Record<string, unknown>[];
    return rows.map((r) => ({
      unit: String(r.unit ?? ''),
      load: String(r.load ?? ''),
      active: String(r.active ?? ''),
      sub: String(r.sub ?? ''),
      description: String(r.description ?? ''),
    }));
  }
  return text
    .split('\n')
    .map((l) => l.trim().replace(/^\u25cf\s*/, ''))
    .filter(Boolean)
    .map((l) => {
      const [unit = '', load = '', active = '', sub = '', ...rest] = l.split(/\s+/);
      return { unit, load, active, sub, description: rest.join(' ') };
    });
}

export type CommandRunner = (cmd: string, args: readonly string[]) => Promise<CommandOutcome>;

export const FAILED_UNITS_COMMAND = ['list-units', '--state=failed', '--output=json', '--plain', '--no-legend', '--no-pager'] as const;

/** The failed units; undefined when there is no systemd to ask (not installed, or not the init system). */
export async function readFailedUnits(run: CommandRunner = runCommandOutcome): Promise<FailedUnitsFacts | undefined> {
  const r = await run('systemctl', FAILED_UNITS_COMMAND);
  if (r.notInstalled || /not been booted with systemd|Failed to connect to bus/.test(r.stderr)) return undefined;
  if (r.code !== 0) throw new Error(`systemctl list-units failed (${r.startError ?? r.signal ?? `exit ${r.code}`}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return { failed: parseFailedUnits(r.stdout) };
}

export interface FailedUnitsCheckOptions {
  run?: CommandRunner;
  thresholds?: FailedUnitsThresholds;
  intervalMs?: number;
}

/**
 * Every 15 minutes: each run forks a systemctl process from the agent (the costliest thing a
 * round does under emulation), and a unit's failure is final until someone acts, so a
 * quarter of an hour changes nothing for the family.
 */
export function createFailedUnitsCheck(opts: FailedUnitsCheckOptions = {}): HealthCheck {
  return {
    name: 'failed-units',
    intervalMs: opts.intervalMs ?? 15 * 60_000,
    async run() {
      const facts = await readFailedUnits(opts.run);
      return facts ? evaluateFailedUnits(facts, opts.thresholds) : [];
    },
  };
}
