/**
 * Boot slots on the device: which slot runs, which boots next, arming a trial of the idle
 * slot and committing the running one, to one contract (shared/contracts/boot-slots.ts):
 * systemd-boot (x86-64), and the Raspberry Pi 5's tryboot through autoboot.txt, tested
 * against a model of the firmware (no board here; Debian's kernel cannot set the tryboot
 * flag yet, issue 14).
 */
export { BootSlotsError } from './slot-rules.ts';
export { createSystemdBootSlots, type SystemdBootSlotsOptions } from './systemd-boot-slots.ts';
export { createTrybootBootSlots, trybootRebootUnavailable, type TrybootBootSlots, type TrybootBootSlotsOptions, type TrybootReboot } from './tryboot-slots.ts';
export type { ArmedTrial, BootSlot, BootSlots, BootSlotsStatus, SlotState, SlotStatus, TrialRequest } from '../../shared/contracts/boot-slots.ts';
