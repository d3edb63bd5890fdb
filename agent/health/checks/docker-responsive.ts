import { uptime } from 'node:os';
import Docker from 'dockerode';
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
 * and short enough that the box notices within a minute (two check intervals).
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

/** Pings dockerd, waiting at most `timeoutSeconds`. */
export async function pingDocker(docker: Docker, timeoutSeconds: number): Promise<DockerPing> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const bound = new AbortController();
  const timer = setTimeout(() => bound.abort(), timeoutSeconds * 1000);
  try {
    // Raced as well as aborted, so the bound holds whatever the client does with the signal.
    const aborted = new Promise<never>((_, reject) => bound.signal.addEventListener('abort', () => reject(Object.assign(new Error('timed out'), { name: 'AbortError' }))));
    // dockerode's types omit ping's options, which its code takes (abortSignal).
    const pingable = docker as unknown as { ping(opts: { abortSignal: AbortSignal }): Promise<unknown> };
    await Promise.race([pingable.ping({ abortSignal: bound.signal }), aborted]);
    return { answered: true, seconds: seconds() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.name === 'AbortError' || e.name === 'TimeoutError' || e.code === 'ABORT_ERR') return { answered: false, seconds: timeoutSeconds, why: 'timeout', detail: 'timed out' };
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') return { answered: false, seconds: seconds(), why: 'refused', detail: `${e.code} on its socket` };
    return { answered: false, seconds: seconds(), why: 'error', detail: e.message };
  } finally {
    clearTimeout(timer);
  }
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
  const docker = new Docker({ socketPath: opts.socketPath });
  let previousSlow = false;
  return {
    name: DOCKER_RESPONSIVE_CHECK,
    // A ping is nearly free; every 30 s finds a hung daemon within a minute.
    intervalMs: opts.intervalMs ?? 30_000,
    async run() {
      const ping = await pingDocker(docker, thresholds.timeoutSeconds);
      const results = evaluateDockerPing(ping, thresholds, { previousSlow, uptimeSeconds: (opts.uptimeSeconds ?? uptime)() });
      previousSlow = ping.answered && ping.seconds > thresholds.slowSeconds;
      return results;
    },
  };
}
