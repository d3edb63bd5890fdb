/**
 * Boot slots on the device: which slot runs, which boots next, arming a trial of the idle
 * slot and committing the running one. systemd-boot (x86-64) is the backend built so far;
 * the Raspberry Pi's tryboot backend fits the same interface (shared/contracts/boot-slots.ts).
 */
export { BootSlotsError, createSystemdBootSlots, type SystemdBootSlotsOptions } from './systemd-boot-slots.ts';
export type { ArmedTrial, BootSlot, BootSlots, BootSlotsStatus, SlotState, SlotStatus, TrialRequest } from '../../shared/contracts/boot-slots.ts';
