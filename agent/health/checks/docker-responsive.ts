import { request } from 'node:http';
import { uptime } from 'node:os';
import type { CheckResult, HealthCheck } from './check.ts';

/**
 * Whether dockerd answers its API. A daemon that is up but no longer answers (a deadlock,
 * a stuck storage driver) looks alive to systemd, so nothing else would restart it; the
 * restart-docker repair acts on this check's `unhealthy`.
 */

export const DOCKER_RESPONSIVE_CHECK = 'docker-responsive';

/**
 * `/_ping` does no work in the daemon, so a healthy dockerd answers in milliseconds; on a
 * Raspberry Pi whose disk is busy (photos being indexed) a few seconds happen. Slower than
 * 3 s is worth saying; no answer in 10 s is far beyond anything a working daemon does,
 * and well inside one check interval.
 */
export const DEFAULT_DOCKER_PING = { slowSeconds: 3, timeoutSeconds: 10 } as const;

export type DockerPingThresholds = { slowSeconds: number; timeoutSeconds: number };

/** What one ping found: the answer's time, or why none came. */
export type DockerPing = { answered: true; seconds: number } | { answered: false; seconds: number; why: 'timeout' | 'refused' | 'error'; detail: string };

/**
 * Seconds after boot during which a Docker that is not running yet is still starting
 * (degraded), not down: under load a Pi's or a VM's dockerd takes a minute or more.
 */
export const DOCKER_STARTUP_GRACE_SECONDS = 180;

/** What the judgement needs beyond this ping: whether the one before was slow too, and whether the box just booted. */
export interface DockerPingContext {
  previousSlow?: boolean;
  uptimeSeconds?: number;
}

/**
 * Judges one ping (pure). A single slow answer is a busy moment, not a problem: slow is
 * degraded only when the previous ping was slow too.
 */
export function evaluateDockerPing(ping: DockerPing, thresholds: DockerPingThresholds = DEFAULT_DOCKER_PING, context: DockerPingContext = { previousSlow: true }): CheckResult[] {
  const metrics = [{ name: 'memu_docker_ping_seconds', help: "Time Docker's API took to answer a ping (the time bound when it did not answer).", type: 'gauge' as const, value: ping.seconds }];
  const took = `${ping.seconds.toFixed(ping.seconds < 1 ? 3 : 1)} s`;
  if (ping.answered && ping.seconds <= thresholds.slowSeconds) {
    return [{ check: DOCKER_RESPONSIVE_CHECK, status: 'ok', reason: `Docker answered in ${took}.`, metrics }];
  }
  if (ping.answered && !context.previousSlow) {
    return [{ check: DOCKER_RESPONSIVE_CHECK, status: 'ok', reason: `Docker answered slowly once (${took}); a busy moment.`, metrics }];
  }
  if (!ping.answered && ping.why === 'refused' && context.uptimeSeconds !== undefined && context.uptimeSeconds < DOCKER_STARTUP_GRACE_SECONDS) {
    return [
      {
        check: DOCKER_RESPONSIVE_CHECK,
        status: 'degraded',
        reason: `Docker is still starting (the box started ${Math.round(context.uptimeSeconds)} s ago).`,
        action: 'Wait a minute; the apps come up once Docker is running.',
        metrics,
      },
    ];
  }
  if (ping.answered) {
    return [
      {
        check: DOCKER_RESPONSIVE_CHECK,
        status: 'degraded',
        reason: `Docker answered slowly: ${took} (it usually takes well under a second).`,
        action: 'The box is probably very busy; if it stays slow, restart the box.',
        metrics,
      },
    ];
  }
  const reason =
    ping.why === 'timeout'
      ? `Docker stopped answering: no answer within ${thresholds.timeoutSeconds} s; the box restarts it.`
      : ping.why === 'refused'
        ? `Docker is not running (${ping.detail}); the box restarts it.`
        : `Docker could not be asked (${ping.detail}); the box restarts it.`;
  return [{ check: DOCKER_RESPONSIVE_CHECK, status: 'unhealthy', reason, action: 'The apps stop working while Docker is down. If this stays, restart the box.', metrics }];
}

/**
 * Pings dockerd on its socket, waiting at most `timeoutSeconds`. A bare `GET /_ping` through
 * node:http rather than dockerode: the ping runs every minute for the life of the box, and
 * under emulation dockerode's request machinery costs several times this little request.
 */
export function pingDocker(socketPath: string, timeoutSeconds: number): Promise<DockerPing> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', method: 'GET', agent: false, timeout: timeoutSeconds * 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200 ? { answered: true, seconds: seconds() } : { answered: false, seconds: seconds(), why: 'error', detail: `it answered HTTP ${res.statusCode}` }));
      res.on('error', (err) => resolve({ answered: false, seconds: seconds(), why: 'error', detail: err.message }));
    });
    // The socket's idle timeout bounds the connect and the wait for the answer alike.
    req.on('timeout', () => {
      resolve({ answered: false, seconds: timeoutSeconds, why: 'timeout', detail: 'timed out' });
      req.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve({ answered: false, seconds: seconds(), why: 'refused', detail: `${err.code} on its socket` });
      else resolve({ answered: false, seconds: seconds(), why: 'error', detail: err.message });
    });
    req.end();
  });
}

export interface DockerResponsiveCheckOptions {
  socketPath: string;
  /** Seconds since boot (os.uptime); tests set it. */
  uptimeSeconds?: () => number;
  thresholds?: DockerPingThresholds;
  intervalMs?: number;
}

export function createDockerResponsiveCheck(opts: DockerResponsiveCheckOptions): HealthCheck {
  const thresholds = opts.thresholds ?? DEFAULT_DOCKER_PING;
  let previousSlow = false;
  return {
    name: DOCKER_RESPONSIVE_CHECK,
    // Every 60 s: a hung daemon is found within a minute and restarted within two, and under
    // emulation each round costs the VM's CPU (the checks' budget is 1 % of a core at idle).
    intervalMs: opts.intervalMs ?? 60_000,
    async run() {
      const ping = await pingDocker(opts.socketPath, thresholds.timeoutSeconds);
      const results = evaluateDockerPing(ping, thresholds, { previousSlow, uptimeSeconds: (opts.uptimeSeconds ?? uptime)() });
      previousSlow = ping.answered && ping.seconds > thresholds.slowSeconds;
      return results;
    },
  };
}
