/**
 * Field updates on the device. So far the pure core: whether to install a release
 * (update-decision.ts) and the slot state machine (update-state.ts); the module that
 * checks the channel, streams the bundle through RAUC and drives the boot slots follows.
 */
export { decideUpdate, type RefusalReason, type UpdateDecision, type UpdateDecisionInput } from './update-decision.ts';
export { INITIAL_UPDATE_STATE, nextUpdateState, type UpdateEffect, type UpdateEvent, type UpdateState } from './update-state.ts';
