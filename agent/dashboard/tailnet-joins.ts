import type { Logger } from 'pino';
import type { Tailnet, TailnetJoinOutcome } from './tailnet.ts';

/** Joining the tailnet takes seconds to a minute and a half: it runs in the background, the Tailscale page follows it. */
export interface TailnetJoin {
  state: 'running' | 'finished';
  startedAt: number;
  outcome?: TailnetJoinOutcome;
}

/** The one join at a time the admin started; its outcome is shown until the next one. */
export class TailnetJoins {
  private current: TailnetJoin | undefined;
  private run: Promise<void> | undefined;

  constructor(
    private readonly tailnet: Tailnet,
    private readonly audit: (actor: string, action: string, detail?: Record<string, unknown>) => void,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  latest(): TailnetJoin | undefined {
    return this.current;
  }

  /** Starts joining unless a join is running; returns whether it started. The key goes to tailscaled and nowhere else. */
  start(authKey: string, actor: string): boolean {
    if (this.current?.state === 'running') return false;
    const join: TailnetJoin = { state: 'running', startedAt: this.now() };
    this.current = join;
    this.run = this.tailnet
      .join(authKey)
      .catch((err: unknown): TailnetJoinOutcome => ({ state: 'failed', reason: (err as Error).message.split(authKey).join('[auth key]') }))
      .then((outcome) => {
        join.state = 'finished';
        join.outcome = outcome;
        this.log.info({ state: outcome.state }, 'tailnet join finished');
        try {
          this.audit(actor, 'tailscale.join-result', { state: outcome.state, ...(outcome.state === 'failed' ? { reason: outcome.reason } : {}) });
        } catch {
          // Logged by audit(); the outcome is still shown.
        }
      });
    return true;
  }

  forget(): void {
    if (this.current?.state === 'finished') this.current = undefined;
  }

  async settled(): Promise<void> {
    await this.run;
  }
}
