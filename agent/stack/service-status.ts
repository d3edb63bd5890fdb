/** What the agent tells the family (and the dashboard) about each service. */
export type ServiceStatus =
  | { state: 'running'; containerId: string }
  | { state: 'healthy'; containerId: string }
  /** Running; its healthcheck has not passed yet. */
  | { state: 'starting'; containerId: string }
  | { state: 'unhealthy'; containerId: string; restarts: number; nextRetryAt?: number; loopBreaker: boolean }
  /** Not started because a dependency is not ready; `reason` says what each one is doing. */
  | { state: 'waiting'; for: string[]; reason: string }
  | { state: 'crash-looping'; exitCode: number; restarts: number; nextRetryAt: number; loopBreaker: boolean }
  /** Stopped and left so by its restart policy (`restart: no`, or `on-failure` after success). */
  | { state: 'exited'; exitCode: number }
  /** Being created, recreated or pulled. */
  | { state: 'pending'; reason: string }
  | { state: 'error'; reason: string };

export type ServiceState = ServiceStatus['state'];

/** A short human sentence, for logs and the dependency reasons of other services. */
export function describeStatus(name: string, status: ServiceStatus | undefined): string {
  if (!status) return `${name} is not known`;
  switch (status.state) {
    case 'running':
      return `${name} is running`;
    case 'healthy':
      return `${name} is healthy`;
    case 'starting':
      return `${name} is not healthy yet (healthcheck starting)`;
    case 'unhealthy':
      return `${name} is unhealthy`;
    case 'waiting':
      return `${name} is waiting (${status.reason})`;
    case 'crash-looping':
      return `${name} is crash-looping (exit code ${status.exitCode}, next retry at ${new Date(status.nextRetryAt).toISOString()})`;
    case 'exited':
      return `${name} exited with code ${status.exitCode}`;
    case 'pending':
      return `${name} is ${status.reason}`;
    case 'error':
      return `${name} has an error: ${status.reason}`;
  }
}
