/**
 * Restarts the admin asked for, run in the background (a service may take its whole stop
 * timeout, 30 s or more, to stop), so the page answers at once and shows the restart's
 * progress and outcome for a few minutes.
 */
export interface RestartJob {
  service: string;
  /** Who asked for it. */
  actor: string;
  state: 'running' | 'done' | 'failed';
  startedAt: number;
  finishedAt?: number;
  error?: string;
}

const SHOWN_FOR_MS = 5 * 60_000;

export class ServiceRestarts {
  private readonly jobs = new Map<string, RestartJob>();
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly restart: (service: string) => Promise<void>,
    private readonly onFinished: (job: RestartJob) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Starts a restart unless one of the same service is running; returns whether it started. */
  start(service: string, actor: string): boolean {
    if (this.jobs.get(service)?.state === 'running') return false;
    const job: RestartJob = { service, actor, state: 'running', startedAt: this.now() };
    this.jobs.set(service, job);
    const run = this.restart(service)
      .then(
        () => this.finish(job, 'done'),
        (err: unknown) => this.finish(job, 'failed', err instanceof Error ? err.message : String(err)),
      )
      .finally(() => this.running.delete(run));
    this.running.add(run);
    return true;
  }

  /** Running restarts, and those that ended in the last few minutes. */
  recent(): RestartJob[] {
    const now = this.now();
    for (const [service, job] of this.jobs) if (job.finishedAt !== undefined && now - job.finishedAt > SHOWN_FOR_MS) this.jobs.delete(service);
    return [...this.jobs.values()];
  }

  /** Resolves once no restart is running (stopping the module, tests). */
  async settled(): Promise<void> {
    await Promise.all(this.running);
  }

  private finish(job: RestartJob, state: 'done' | 'failed', error?: string): void {
    job.state = state;
    job.finishedAt = this.now();
    if (error !== undefined) job.error = error;
    this.onFinished(job);
  }
}
