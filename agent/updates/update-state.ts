import type { BootSlot } from '../../shared/contracts/boot-slots.ts';

/**
 * The OS update's life on the device, as a pure reducer: (state, event) → (state, effects).
 * The state is kept on the data partition (never in a root slot, so a rollback does not
 * replay an old slot's view), the caller applies the effects in order and feeds back what
 * happened as events. Every path ends on a version that boots and is healthy:
 *
 *   idle ──install-started──▶ downloading ──install-finished──▶ installed
 *     ▲                            │ install-failed / booted (a reset)      │ trial-armed, then booted
 *     └────────────────────────────┘                                        ▼ (into the new slot)
 *                        committed ◀──healthy── trial-booting ──deadline passed──▶ rolling-back
 *                                                    │ booted (loader fell back)         │ booted (old slot)
 *                                                    ▼                                   ▼
 *                                               rolled-back ◀─────────────────────── rolled-back
 *
 * `committed` and `rolled-back` are at rest like `idle`: a new install may start from them,
 * and they say what the last update did (shown on the dashboard and `/healthz`).
 */
export interface ReleaseRef {
  version: string;
  /** sha256 of the signed release manifest the install follows. */
  manifestSha256: string;
}

interface Underway {
  release: ReleaseRef;
  fromVersion: string;
  fromSlot: BootSlot;
  targetSlot: BootSlot;
}

export type RollbackReason =
  /** The new slot never reached a running agent: the loader used up its attempts and fell back. */
  | 'trial-boot-failed'
  /** The new slot booted but the stack was not healthy within the bound. */
  | 'unhealthy';

export type UpdateState =
  | { phase: 'idle'; last?: { outcome: 'install-failed' | 'interrupted'; version: string; reason: string; at: string } }
  | ({ phase: 'downloading'; bytesDone: number; bytesTotal: number; startedAt: string } & Underway)
  | ({ phase: 'installed'; trialArmed: boolean } & Underway)
  | ({ phase: 'trial-booting'; bootId: string; healthyBy: string } & Underway)
  | ({ phase: 'rolling-back'; reason: RollbackReason; detail: string } & Underway)
  | { phase: 'committed'; release: ReleaseRef; slot: BootSlot; at: string }
  | { phase: 'rolled-back'; release: ReleaseRef; slot: BootSlot; reason: RollbackReason; detail: string; at: string };

export type UpdateEvent =
  | { type: 'install-started'; release: ReleaseRef; fromVersion: string; currentSlot: BootSlot; bytesTotal: number; now: Date }
  | { type: 'download-progress'; bytesDone: number }
  | { type: 'install-failed'; reason: string; now: Date }
  | { type: 'install-finished' }
  | { type: 'trial-armed' }
  /** The agent started on a boot: which slot, and that boot's id (/proc/sys/kernel/random/boot_id). */
  | { type: 'booted'; slot: BootSlot; bootId: string; now: Date }
  /** The health model's verdict on the core stack. */
  | { type: 'health'; healthy: boolean; detail: string; now: Date };

export type UpdateEffect =
  /** Write the idle slot's trial (BootSlots.armTrial), then reboot into it. */
  | { type: 'arm-trial-and-reboot'; slot: BootSlot }
  /** BootSlots.markCurrentGood(): the running slot boots without counting from now on. */
  | { type: 'mark-good' }
  /** Reboot into the slot the update started from (its entry is still the good one). */
  | { type: 'reboot-into'; slot: BootSlot }
  /** Before the old stack starts: restore the databases dumped before the switch. */
  | { type: 'restore-database-dump'; takenBefore: string };

export interface Transition {
  state: UpdateState;
  effects: UpdateEffect[];
  /** Set when the event does not apply to the state (the state is unchanged): why. */
  ignored?: string;
}

/** How long a trial boot may take to become healthy before the device goes back. */
export const DEFAULT_HEALTHY_WITHIN_MS = 15 * 60_000;

export const INITIAL_UPDATE_STATE: UpdateState = { phase: 'idle' };

export function nextUpdateState(state: UpdateState, event: UpdateEvent, healthyWithinMs = DEFAULT_HEALTHY_WITHIN_MS): Transition {
  const stay = (why: string): Transition => ({ state, effects: [], ignored: `${event.type} while ${state.phase}: ${why}` });
  switch (event.type) {
    case 'install-started': {
      if (state.phase !== 'idle' && state.phase !== 'committed' && state.phase !== 'rolled-back') return stay('an update is already under way');
      const targetSlot: BootSlot = event.currentSlot === 'a' ? 'b' : 'a';
      return {
        state: { phase: 'downloading', release: event.release, fromVersion: event.fromVersion, fromSlot: event.currentSlot, targetSlot, bytesDone: 0, bytesTotal: event.bytesTotal, startedAt: event.now.toISOString() },
        effects: [],
      };
    }
    case 'download-progress':
      if (state.phase !== 'downloading') return stay('nothing is downloading');
      return { state: { ...state, bytesDone: Math.min(event.bytesDone, state.bytesTotal) }, effects: [] };
    case 'install-failed':
      if (state.phase !== 'downloading') return stay('nothing is being installed');
      return { state: { phase: 'idle', last: { outcome: 'install-failed', version: state.release.version, reason: event.reason, at: event.now.toISOString() } }, effects: [] };
    case 'install-finished':
      if (state.phase !== 'downloading') return stay('nothing is being installed');
      return { state: { ...underway(state), phase: 'installed', trialArmed: false }, effects: [{ type: 'arm-trial-and-reboot', slot: state.targetSlot }] };
    case 'trial-armed':
      if (state.phase !== 'installed') return stay('no installed slot to try');
      return { state: { ...state, trialArmed: true }, effects: [] };
    case 'booted':
      return onBoot(state, event, healthyWithinMs, stay);
    case 'health': {
      if (state.phase !== 'trial-booting') return stay('no trial is running');
      if (event.healthy) return { state: { phase: 'committed', release: state.release, slot: state.targetSlot, at: event.now.toISOString() }, effects: [{ type: 'mark-good' }] };
      if (event.now.getTime() < Date.parse(state.healthyBy)) return { state, effects: [] };
      return {
        state: { ...underway(state), phase: 'rolling-back', reason: 'unhealthy', detail: `not healthy by ${state.healthyBy}: ${event.detail}` },
        effects: [{ type: 'reboot-into', slot: state.fromSlot }],
      };
    }
  }
}

function onBoot(state: UpdateState, event: Extract<UpdateEvent, { type: 'booted' }>, healthyWithinMs: number, stay: (why: string) => Transition): Transition {
  const at = event.now.toISOString();
  const trial = (s: Underway): Transition => ({
    state: { ...s, phase: 'trial-booting', bootId: event.bootId, healthyBy: new Date(event.now.getTime() + healthyWithinMs).toISOString() },
    effects: [],
  });
  const rolledBack = (s: Underway, reason: RollbackReason, detail: string): Transition => ({
    state: { phase: 'rolled-back', release: s.release, slot: s.fromSlot, reason, detail, at },
    // The new stack may have migrated the databases before it failed; the old one must not run on a newer schema.
    effects: [{ type: 'restore-database-dump', takenBefore: s.release.version }],
  });
  switch (state.phase) {
    case 'downloading':
      // A reset in the middle of writing the idle slot: the running slot was never touched.
      return { state: { phase: 'idle', last: { outcome: 'interrupted', version: state.release.version, reason: 'the device restarted while the update was being written; the next check starts it again', at } }, effects: [] };
    case 'installed':
      if (event.slot === state.targetSlot) return trial(underway(state));
      if (!state.trialArmed) return { state, effects: [{ type: 'arm-trial-and-reboot', slot: state.targetSlot }] };
      return rolledBack(underway(state), 'trial-boot-failed', `slot ${state.targetSlot} (${state.release.version}) was armed but the loader started slot ${event.slot}: the new system did not boot`);
    case 'trial-booting':
      if (event.slot === state.targetSlot) return event.bootId === state.bootId ? { state, effects: [] } : trial(underway(state));
      return rolledBack(underway(state), 'trial-boot-failed', `slot ${state.targetSlot} (${state.release.version}) stopped before it was healthy and the loader went back to slot ${event.slot}`);
    case 'rolling-back':
      if (event.slot === state.fromSlot) return rolledBack(underway(state), state.reason, state.detail);
      return { state, effects: [{ type: 'reboot-into', slot: state.fromSlot }] };
    default:
      return stay('no update is under way');
  }
}

function underway(s: Underway): Underway {
  return { release: s.release, fromVersion: s.fromVersion, fromSlot: s.fromSlot, targetSlot: s.targetSlot };
}
