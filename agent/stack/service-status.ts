/** What the agent tells the family (and the dashboard) about each service. */
export type ServiceStatus =
  | { state: 'running'; containerId: string }
  | { state: 'healthy'; containerId: string }
  /** Running; its healthcheck has not passed yet. */
  | { state: 'starting'; containerId: string }
  | { state: 'unhealthy'; containerId: string; restarts: number; nextRetryAt?: number; loopBreaker: boolean }
  /** Not started because a dependency is not ready; `reason` says what each one is doing. */
  | { state: 'waiting'; for: string[]; reason: string }
  /** Exited and waiting out its restart backoff; restarted at `nextRetryAt`. */
  | { state: 'backing-off'; exitCode: number; outOfMemory?: true; restarts: number; nextRetryAt: number }
  /** The loop breaker tripped (too many restarts in the window): left alone until `nextRetryAt`. */
  | { state: 'crash-looping'; exitCode: number; outOfMemory?: true; restarts: number; nextRetryAt: number }
  /** Stopped and left so by its restart policy (`restart: no`, or `on-failure` after success). */
  | { state: 'exited'; exitCode: number; outOfMemory?: true }
  /** Being created, recreated or pulled. */
  | { state: 'pending'; reason: string }
  | { state: 'error'; reason: string };

export type ServiceState = ServiceStatus['state'];

/** A service's status with the sentence a person reads, worded at the moment it is asked for. */
export type ReportedServiceStatus = ServiceStatus & { summary: string };

/** Seconds until `at`, rounded up, never negative: what "restarting in N s" counts down. */
export function secondsUntil(at: number, now: number): number {
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * A short human sentence, for logs, /healthz and the dependency reasons of other
 * services. `now` words the countdowns ("restarting in 17 s").
 */
export function describeStatus(name: string, status: ServiceStatus | undefined, now: number): string {
  if (!status) return `${name} is not known`;
  switch (status.state) {
    case 'running':
      return `${name} is running`;
    case 'healthy':
      return `${name} is healthy`;
    case 'starting':
      return `${name} is not healthy yet (healthcheck starting)`;
    case 'unhealthy':
      if (status.loopBreaker && status.nextRetryAt !== undefined) {
        return `${name} is unhealthy; restarted ${status.restarts} times, left alone until ${new Date(status.nextRetryAt).toISOString()}`;
      }
      if (status.nextRetryAt !== undefined) return `${name} is unhealthy; restarting in ${secondsUntil(status.nextRetryAt, now)} s`;
      return `${name} is unhealthy`;
    case 'waiting':
      return `${name} is waiting (${status.reason})`;
    case 'backing-off':
      return `${name} ${exited(status)}; restarting in ${secondsUntil(status.nextRetryAt, now)} s`;
    case 'crash-looping':
      return `${name} is crash-looping (exit code ${status.exitCode}${status.outOfMemory ? ', out of memory' : ''}, restarted ${status.restarts} times; left alone until ${new Date(status.nextRetryAt).toISOString()})`;
    case 'exited':
      return `${name} ${exited(status)}`;
    case 'pending':
      return `${name} is ${status.reason}`;
    case 'error':
      return `${name} has an error: ${status.reason}`;
  }
}

/** Every service's status with its summary worded at `now`. */
export function reportServices(services: Readonly<Record<string, ServiceStatus>>, now: number): Record<string, ReportedServiceStatus> {
  return Object.fromEntries(Object.entries(services).map(([name, status]) => [name, { ...status, summary: describeStatus(name, status, now) }]));
}

const exited = (status: { exitCode: number; outOfMemory?: true }) =>
  status.outOfMemory ? `ran out of memory and was stopped by the kernel (exit code ${status.exitCode})` : `exited with code ${status.exitCode}`;
