/**
 * Field updates on the device. So far the pure core: whether to install a release
 * (update-decision.ts) and the slot state machine (update-state.ts), and RAUC's boot loader
 * backend over the boot slots (rauc-boot-backend.ts, slot-boot-files.ts); the module that
 * checks the channel, streams the bundle through RAUC and drives the boot slots follows.
 */
export { decideUpdate, type RefusalReason, type UpdateDecision, type UpdateDecisionInput } from './update-decision.ts';
export { INITIAL_UPDATE_STATE, nextUpdateState, type UpdateEffect, type UpdateEvent, type UpdateState } from './update-state.ts';
export { answerRaucBootBackend, DEFAULT_TRIAL_ATTEMPTS, deviceBootBackendDeps, raucBootBackendCommand, type DeviceBootBackendOptions, type RaucBootBackendAnswer, type RaucBootBackendDeps } from './rauc-boot-backend.ts';
export { bootPartitionSlotBootFiles, commandLineForSlot, espSlotBootFiles, SlotBootFilesError, type SlotBoot, type SlotBootFiles } from './slot-boot-files.ts';
