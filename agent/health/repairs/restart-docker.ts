import { runCommand } from '../../../shared/process/run-command.ts';
import { DOCKER_RESPONSIVE_CHECK, pingDocker } from '../checks/docker-responsive.ts';
import { DAY, HOUR, MINUTE, resultNamed, type Repair, type RepairLimits } from './repair.ts';

export const RESTART_DOCKER_REPAIR = 'restart-docker';

/**
 * Once at once, then backoff: a restart cures a daemon that deadlocked; a daemon that
 * hangs again soon after has a cause a restart does not remove (a dying disk, no memory),
 * and every restart stops the family's apps for a moment (live-restore keeps containers
 * running, but not always their connections). 15 min between restarts gives the daemon
 * time to come up and be judged; 2 an hour and 6 a day, and then the reboot repair
 * decides.
 */
export const RESTART_DOCKER_LIMITS: RepairLimits = {
  minGapMs: 15 * MINUTE,
  windows: [
    { max: 2, windowMs: HOUR },
    { max: 6, windowMs: DAY },
  ],
};

export interface RestartDockerOptions {
  socketPath: string;
  /** Restarts the daemon; on the device `systemctl restart docker.service`. */
  restart?: () => Promise<void>;
  /** How long after the restart Docker must answer for the repair to count as done. */
  answerWithinSeconds?: number;
  /**
   * How long the check must have said unhealthy before the daemon is restarted. The
   * default, 50 s, is the third failed ping in a row at the check's 30 s interval: one
   * missed ping (a moment of heavy swapping) does not stop the family's apps.
   */
  unhealthyForMs?: number;
}

export const systemctlRestartDocker = async (): Promise<void> => {
  await runCommand('systemctl', ['restart', 'docker.service']);
};

/**
 * Restarts a dockerd that stopped answering. It does not hold the stack still first: the
 * reconciler may itself be stuck waiting on the hung daemon, and holding would wait for
 * it forever; the reconciler retries whatever the restart interrupted.
 */
export function restartDockerRepair(opts: RestartDockerOptions): Repair {
  const answerWithin = opts.answerWithinSeconds ?? 90;
  const unhealthyFor = opts.unhealthyForMs ?? 50_000;
  const restart = opts.restart ?? systemctlRestartDocker;
  return {
    name: RESTART_DOCKER_REPAIR,
    answers(results, view) {
      const r = resultNamed(results, DOCKER_RESPONSIVE_CHECK);
      if (r?.status !== 'unhealthy') return false;
      const since = view.since(DOCKER_RESPONSIVE_CHECK) ?? view.now;
      return view.now - since >= unhealthyFor;
    },
    limits: RESTART_DOCKER_LIMITS,
    // systemd waits up to its stop timeout (90 s by default) for a hung daemon before killing it.
    timeoutMs: (120 + answerWithin) * 1000,
    async run() {
      const started = Date.now();
      await restart();
      const restartedAfter = (Date.now() - started) / 1000;
      const deadline = Date.now() + answerWithin * 1000;
      for (;;) {
        const ping = await pingDocker(opts.socketPath, 5);
        if (ping.answered) {
          return { ok: true, message: `Docker was restarted (${restartedAfter.toFixed(1)} s) and answers again, ${((Date.now() - started) / 1000).toFixed(1)} s after the restart began.` };
        }
        if (Date.now() > deadline) {
          return { ok: false, message: `Docker was restarted but did not answer within ${answerWithin} s (${ping.why}: ${ping.detail}).` };
        }
        await new Promise((r) => setTimeout(r, 500));
      }
    },
  };
}
