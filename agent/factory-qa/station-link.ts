import type { Logger } from 'pino';
import { QA_UNIT_STATE_FORMAT, type QaUnitState } from '../../shared/contracts/qa-report.ts';
import { requestJson } from '../../shared/http/http-json.ts';

/**
 * The unit's line to the QA station on the bench LAN (`stationUrl` in memu-qa.json): how
 * the run goes (`testing` at the start and after each step), then the signed report or
 * why QA could not run, as `POST <stationUrl>/qa/units/<claim code>`
 * (shared/contracts/qa-report.ts, QaUnitState).
 *
 * Best effort, and never in the run's way: the report's copy on the FAT partition stays
 * what the station can always read back, so nothing here throws, and the only wait it
 * causes is `finish`, bounded by `finalDeliveryMs`. On a real boot the network may come
 * up only after QA has started and a station may be briefly away, so a state that did not
 * get through is tried again with growing pauses; a newer state replaces one not yet sent
 * (the station wants the latest, not the history). An answer of 4xx is the station
 * refusing this message (not the contract, an unknown claim code): sending it again would
 * not help, so it is given up.
 *
 * Through node:http (shared/http/http-json.ts), since the agent's V8 runs without
 * WebAssembly and so without fetch.
 */

/** A unit's state without what the link adds itself (the format and the claim code). */
export type StationUpdate = Omit<QaUnitState, 'format' | 'claimCode'>;

export type StationDelivery = { delivered: true; attempts: number; answer?: unknown } | { delivered: false; attempts: number; reason: string };

export interface StationLink {
  /** Sends this state as soon as it can; returns at once. */
  update(state: StationUpdate): void;
  /** Sends the last state, tried again until the station has it or `finalDeliveryMs` passed; never rejects. */
  finish(state: StationUpdate): Promise<StationDelivery>;
  /** Stops every attempt (the agent is stopping); a pending finish resolves undelivered. */
  stop(): void;
}

export interface StationLinkOptions {
  stationUrl: string;
  claimCode: string;
  log: Pick<Logger, 'info' | 'warn' | 'debug'>;
  /** Each request's bound (default 5 s): a station that is there answers in milliseconds. */
  requestTimeoutMs?: number;
  /** How long the last state is tried for (default 2 minutes): a passed unit powers off only after it. */
  finalDeliveryMs?: number;
  /** The pause before attempt n + 1 after n failed ones (default: stationRetryDelayMs). */
  retryDelayMs?: (failedAttempts: number) => number;
  now?: () => number;
}

export const STATION_REQUEST_TIMEOUT_MS = 5_000;
export const STATION_FINAL_DELIVERY_MS = 120_000;

/** 1 s, 2 s, 4 s, 8 s, then every 15 s: quick while a network comes up, then a steady knock on a station that is away. */
export function stationRetryDelayMs(failedAttempts: number): number {
  return Math.min(1_000 * 2 ** Math.max(0, failedAttempts - 1), 15_000);
}

/** The station's address for a unit's states. */
export function unitStatePath(claimCode: string): string {
  return `/qa/units/${encodeURIComponent(claimCode)}`;
}

type Attempt = { outcome: 'delivered'; answer: unknown } | { outcome: 'refused'; reason: string } | { outcome: 'retry'; reason: string };

export function createStationLink(o: StationLinkOptions): StationLink {
  const now = o.now ?? Date.now;
  const requestTimeoutMs = o.requestTimeoutMs ?? STATION_REQUEST_TIMEOUT_MS;
  const retryDelayMs = o.retryDelayMs ?? stationRetryDelayMs;
  const path = unitStatePath(o.claimCode);
  let pending: StationUpdate | undefined;
  let final: { deadline: number; settle: (d: StationDelivery) => void } | undefined;
  let sending: Promise<void> | undefined;
  let stopped = false;
  let finishing = false;
  let attempts = 0;
  let reached = false;
  let warnedUnreachable = false;
  let lastReason = 'no answer yet';
  const giveUpReason = (why: string) => `the QA station was not reached within ${Math.round((o.finalDeliveryMs ?? STATION_FINAL_DELIVERY_MS) / 1000)} s: ${why}`;
  // Wakes the pause between attempts when a newer state or the stop comes.
  let wake: (() => void) | undefined;

  const send = async (state: StationUpdate, timeoutMs: number): Promise<Attempt> => {
    const message: QaUnitState = { format: QA_UNIT_STATE_FORMAT, claimCode: o.claimCode, ...state };
    try {
      const answer = await requestJson('the QA station', o.stationUrl, { method: 'POST', path, body: message, timeoutMs });
      if (answer.status >= 200 && answer.status < 300) return { outcome: 'delivered', answer: answer.body };
      const why = `the QA station answered HTTP ${answer.status}: ${typeof answer.body === 'object' && answer.body && 'error' in answer.body ? String((answer.body as { error: unknown }).error) : String(answer.body ?? '')}`.slice(0, 500);
      // 408 and 429 are the station asking for another try; any other 4xx is about the message itself.
      if (answer.status >= 400 && answer.status < 500 && answer.status !== 408 && answer.status !== 429) return { outcome: 'refused', reason: why };
      return { outcome: 'retry', reason: why };
    } catch (err) {
      return { outcome: 'retry', reason: (err as Error).message };
    }
  };

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  const settleFinal = (d: StationDelivery) => {
    final?.settle(d);
    final = undefined;
  };

  async function drain(): Promise<void> {
    let failedInARow = 0;
    while (pending && !stopped) {
      const state = pending;
      const isFinal = final !== undefined;
      const remaining = isFinal ? final!.deadline - now() : Infinity;
      if (remaining <= 0) {
        pending = undefined;
        settleFinal({ delivered: false, attempts, reason: giveUpReason(lastReason) });
        break;
      }
      attempts++;
      const result = await send(state, Math.max(1, Math.min(requestTimeoutMs, remaining)));
      if (stopped) break;
      if (result.outcome === 'delivered') {
        if (!reached) o.log.info({ station: o.stationUrl }, 'the QA station is reached');
        reached = true;
        failedInARow = 0;
        if (pending === state) pending = undefined;
        if (isFinal && pending === undefined) settleFinal({ delivered: true, attempts, answer: result.answer });
        continue;
      }
      if (result.outcome === 'refused') {
        o.log.warn({ station: o.stationUrl, state: state.state }, `the QA station refused this unit's state: ${result.reason}`);
        failedInARow = 0;
        if (pending === state) pending = undefined;
        if (isFinal && pending === undefined) settleFinal({ delivered: false, attempts, reason: result.reason });
        continue;
      }
      failedInARow++;
      lastReason = result.reason;
      if (!warnedUnreachable) o.log.warn({ station: o.stationUrl }, `the QA station is not reached yet (${result.reason}); trying again`);
      else o.log.debug({ station: o.stationUrl, attempt: attempts }, result.reason);
      warnedUnreachable = true;
      // A newer state that came meanwhile goes at once; the same one waits its pause, never past the deadline.
      if (pending !== state) continue;
      await pause(Math.min(retryDelayMs(failedInARow), final ? Math.max(0, final.deadline - now()) : Infinity));
    }
  }

  const kick = () => {
    if (stopped) return;
    if (sending) return wake?.();
    sending = drain().finally(() => {
      sending = undefined;
      if (pending && !stopped) kick();
    });
  };

  return {
    update(state) {
      // After the last state nothing more is sent: a late progress state must not follow the report.
      if (stopped || finishing) return;
      pending = state;
      kick();
    },
    finish(state) {
      if (stopped) return Promise.resolve({ delivered: false, attempts, reason: 'the agent is stopping' });
      finishing = true;
      const finalDeliveryMs = o.finalDeliveryMs ?? STATION_FINAL_DELIVERY_MS;
      return new Promise<StationDelivery>((resolve) => {
        // The bound holds even against a request already in flight when the run ended.
        const guard = setTimeout(() => {
          if (pending === state) pending = undefined;
          settleFinal({ delivered: false, attempts, reason: giveUpReason(lastReason) });
          wake?.();
        }, finalDeliveryMs);
        final = {
          deadline: now() + finalDeliveryMs,
          settle: (d) => {
            clearTimeout(guard);
            resolve(d);
          },
        };
        pending = state;
        kick();
      });
    },
    stop() {
      stopped = true;
      pending = undefined;
      wake?.();
      settleFinal({ delivered: false, attempts, reason: 'the agent is stopping' });
    },
  };
}
