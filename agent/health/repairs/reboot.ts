import type { CheckResult } from '../checks/check.ts';
import { runCommand } from '../../../shared/process/run-command.ts';
import { DOCKER_RESPONSIVE_CHECK } from '../checks/docker-responsive.ts';
import { DAY, HOUR, MINUTE, resultNamed, type Repair, type RepairLimits, type RepairView } from './repair.ts';
import { RESTART_DOCKER_LIMITS, RESTART_DOCKER_REPAIR } from './restart-docker.ts';

export const REBOOT_REPAIR = 'reboot';

/**
 * A reboot is the last resort: it stops everything for a minute or two, and a box that
 * reboots in a loop is worse than one that stays up half-broken, so at most 3 a day (a
 * day's worth of tries that each had hours to work), at least 2 hours apart.
 */
export const REBOOT_LIMITS: RepairLimits = {
  minGapMs: 2 * HOUR,
  windows: [{ max: 3, windowMs: DAY }],
};

export interface RebootOptions {
  /** Reboots the device; on the device `systemctl reboot` (systemd stops every service cleanly). */
  reboot?: () => Promise<void>;
  /**
   * Other results that only a reboot cures, for the agent's own checks that know it (a
   * data filesystem remounted read-only is checked by fsck at boot). Default: none.
   */
  alsoWhen?: (results: readonly CheckResult[]) => boolean;
  /** How long after Docker's last restart a still unanswering Docker counts as not cured by it. */
  graceAfterRestartMs?: number;
}

export const systemctlReboot = async (): Promise<void> => {
  await runCommand('systemctl', ['reboot']);
};

/**
 * Docker still does not answer although its restarts were tried as often as their hourly
 * limit allows, the last one long enough ago to have worked.
 */
export function dockerRestartsExhausted(results: readonly CheckResult[], view: RepairView, graceMs = 10 * MINUTE): boolean {
  if (resultNamed(results, DOCKER_RESPONSIVE_CHECK)?.status !== 'unhealthy') return false;
  const hourly = RESTART_DOCKER_LIMITS.windows[0]!;
  const last = view.lastAttempt(RESTART_DOCKER_REPAIR);
  return last !== undefined && view.attemptsSince(RESTART_DOCKER_REPAIR, view.now - hourly.windowMs + 1) >= hourly.max && view.now - last >= graceMs;
}

export function rebootRepair(opts: RebootOptions = {}): Repair {
  const reboot = opts.reboot ?? systemctlReboot;
  return {
    name: REBOOT_REPAIR,
    answers: (results, view) => dockerRestartsExhausted(results, view, opts.graceAfterRestartMs) || (opts.alsoWhen?.(results) ?? false),
    limits: REBOOT_LIMITS,
    timeoutMs: 60_000,
    async run(results) {
      const why = results.filter((r) => r.status === 'unhealthy').map((r) => r.check);
      await reboot();
      return { ok: true, message: `The box was restarted because ${why.join(', ') || 'a check'} stayed unhealthy after the other repairs.` };
    },
  };
}
