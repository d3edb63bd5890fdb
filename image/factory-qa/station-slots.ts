/**
 * One bench slot of the QA station while it flashes a drive: what stage it is in and how
 * far it got. The station and its views share this model; `advanceSlot` is the only way a
 * slot changes, so a slot that has finished (ready or failed) can never be moved on to
 * look better than it is.
 *
 *   waiting -> flashing -> verifying -> preseeding -> ready
 *        \________\___________\____________\-------> failed (with the reason)
 */

export type SlotStage = 'waiting' | 'flashing' | 'verifying' | 'preseeding' | 'ready' | 'failed';

export interface SlotState {
  /** 1-based, in the order the targets were given. */
  slot: number;
  target: string;
  stage: SlotStage;
  /** Bytes done in the current stage and, when known, its total. */
  bytes: number;
  totalBytes?: number;
  /** When the current stage began (ms, performance.now() or Date.now(): one clock per station). */
  stageStartedAt: number;
  /** When the slot last changed, for the rate. */
  updatedAt: number;
  claimCode?: string;
  keyId?: string;
  /** Why the slot failed. */
  reason?: string;
  /** The failing step's exit code (image/host/errors.ts). */
  exitCode?: number;
}

export type SlotEvent =
  | { kind: 'stage'; stage: Exclude<SlotStage, 'waiting' | 'failed'>; totalBytes?: number; at: number }
  | { kind: 'bytes'; bytes: number; at: number }
  | { kind: 'unit'; claimCode: string; keyId: string; at: number }
  | { kind: 'failed'; reason: string; exitCode: number; at: number };

const NEXT: Record<SlotStage, readonly SlotStage[]> = {
  waiting: ['flashing'],
  // Without a read-back (verify off) the flash goes straight to the preseed.
  flashing: ['verifying', 'preseeding'],
  verifying: ['preseeding'],
  preseeding: ['ready'],
  ready: [],
  failed: [],
};

export function isFinished(slot: Pick<SlotState, 'stage'>): boolean {
  return slot.stage === 'ready' || slot.stage === 'failed';
}

export function waitingSlot(slot: number, target: string, at: number): SlotState {
  return { slot, target, stage: 'waiting', bytes: 0, stageStartedAt: at, updatedAt: at };
}

/**
 * The slot after `event`. Byte counts that arrive after a slot finished are dropped (the
 * flasher reports its last bytes while it unwinds); any other change of a finished slot,
 * or a stage out of order, is a bug in the station and throws.
 */
export function advanceSlot(slot: SlotState, event: SlotEvent): SlotState {
  switch (event.kind) {
    case 'bytes':
      if (isFinished(slot)) return slot;
      return { ...slot, bytes: event.bytes, updatedAt: event.at };
    case 'unit':
      if (slot.stage !== 'preseeding') throw new Error(`slot ${slot.slot}: a unit key is made while preseeding, not while ${slot.stage}`);
      return { ...slot, claimCode: event.claimCode, keyId: event.keyId, updatedAt: event.at };
    case 'failed':
      if (isFinished(slot)) throw new Error(`slot ${slot.slot} is already ${slot.stage}; it cannot fail now (${event.reason})`);
      return { ...slot, stage: 'failed', reason: event.reason, exitCode: event.exitCode, updatedAt: event.at };
    case 'stage': {
      if (!NEXT[slot.stage].includes(event.stage)) throw new Error(`slot ${slot.slot} cannot go from ${slot.stage} to ${event.stage}`);
      const { totalBytes: _old, ...rest } = slot;
      return { ...rest, stage: event.stage, bytes: 0, ...(event.totalBytes !== undefined ? { totalBytes: event.totalBytes } : {}), stageStartedAt: event.at, updatedAt: event.at };
    }
  }
}

/** Bytes per second in the current stage, and the seconds left when the total is known. */
export function slotRate(slot: SlotState): { bytesPerSecond: number; etaSeconds?: number } {
  const seconds = (slot.updatedAt - slot.stageStartedAt) / 1000;
  const bytesPerSecond = seconds > 0 ? slot.bytes / seconds : 0;
  if (slot.totalBytes === undefined || bytesPerSecond <= 0 || slot.bytes >= slot.totalBytes) return { bytesPerSecond };
  return { bytesPerSecond, etaSeconds: (slot.totalBytes - slot.bytes) / bytesPerSecond };
}
