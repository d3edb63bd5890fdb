import type { CurrentContainer } from './current-state.ts';

/**
 * Restart backoff with a loop breaker: the n-th consecutive failure waits
 * min(base * 2^(n-1), max); at most `maxRestartsInWindow` restarts per `windowMs`
 * (HAOS-style), after which the service is reported and left alone until the oldest
 * restart leaves the window. A run longer than `stableAfterMs` resets the streak.
 */
export interface BackoffPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
  windowMs: number;
  maxRestartsInWindow: number;
  stableAfterMs: number;
}

/**
 * 10 s doubling to 2 min: a service that keeps crashing is restarted 10 times in about
 * 15 minutes (10+20+40+80+6×120 s), so the 10-in-30-minutes rule can trip. With a 5-minute
 * cap the 10th restart came after 30 minutes and the rule never tripped.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseDelayMs: 10_000,
  maxDelayMs: 2 * 60_000,
  windowMs: 30 * 60_000,
  maxRestartsInWindow: 10,
  stableAfterMs: 60_000,
};

/** Per service: the agent's own restarts after a failure. Held in memory by the reconciler. */
export interface RestartRecord {
  /** Epoch ms of each failure-restart still inside the window, oldest first. */
  restarts: number[];
  /** Consecutive failures since the service last ran stably. */
  streak: number;
}

export type RestartHistory = Readonly<Record<string, RestartRecord>>;

export function recordRestart(history: RestartHistory, service: string, now: number): RestartHistory {
  const record = history[service] ?? { restarts: [], streak: 0 };
  return { ...history, [service]: { restarts: [...record.restarts, now], streak: record.streak + 1 } };
}

/**
 * Forgets restarts that left the window, and the streak of a service whose container
 * ran stably (still running and not unhealthy, or exited after a long run).
 */
export function pruneRestartHistory(
  history: RestartHistory,
  containers: readonly CurrentContainer[],
  now: number,
  policy: BackoffPolicy,
): RestartHistory {
  const out: Record<string, RestartRecord> = {};
  for (const [service, record] of Object.entries(history)) {
    const restarts = record.restarts.filter((t) => t > now - policy.windowMs);
    let streak = record.streak;
    const container = containers.find((c) => c.service === service);
    if (container?.startedAt !== undefined) {
      const ranStably =
        container.state === 'running'
          ? container.health !== 'unhealthy' && container.health !== 'starting' && now - container.startedAt >= policy.stableAfterMs
          : container.finishedAt !== undefined && container.finishedAt - container.startedAt >= policy.stableAfterMs;
      if (ranStably) streak = 0;
    }
    // Quiet for a whole window: the next failure starts a new streak.
    if (restarts.length === 0) streak = 0;
    if (restarts.length > 0 || streak > 0) out[service] = { restarts, streak };
  }
  return out;
}

export interface RetryDecision {
  /** Epoch ms from which a (re)start is allowed; <= now means go ahead. */
  retryAt: number;
  /** The loop breaker tripped: too many restarts inside the window. */
  loopBreaker: boolean;
  restartsInWindow: number;
  streak: number;
}

export function nextRetry(record: RestartRecord | undefined, policy: BackoffPolicy): RetryDecision {
  if (!record || record.restarts.length === 0 || record.streak === 0) {
    return { retryAt: 0, loopBreaker: false, restartsInWindow: record?.restarts.length ?? 0, streak: record?.streak ?? 0 };
  }
  const last = record.restarts[record.restarts.length - 1]!;
  const delay = Math.min(policy.baseDelayMs * 2 ** (record.streak - 1), policy.maxDelayMs);
  let retryAt = last + delay;
  let loopBreaker = false;
  const count = record.restarts.length;
  if (count >= policy.maxRestartsInWindow) {
    loopBreaker = true;
    retryAt = Math.max(retryAt, record.restarts[count - policy.maxRestartsInWindow]! + policy.windowMs);
  }
  return { retryAt, loopBreaker, restartsInWindow: count, streak: record.streak };
}
