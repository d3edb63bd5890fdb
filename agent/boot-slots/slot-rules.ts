import { readFile } from 'node:fs/promises';
import { slotFromKernelCmdline, type BootSlot, type TrialRequest } from '../../shared/contracts/boot-slots.ts';

/** A request the slots cannot carry out, said so that the caller can show it as is. */
export class BootSlotsError extends Error {
  override name = 'BootSlotsError';
}

/** The running slot, from `memu.slot=` on the kernel command line; `startedFrom` names what every backend boots (an entry, a partition). */
export async function readRunningSlot(cmdlinePath: string, startedFrom: string): Promise<BootSlot> {
  const slot = slotFromKernelCmdline(await readFile(cmdlinePath, 'utf8'));
  if (!slot) throw new BootSlotsError(`the kernel command line (${cmdlinePath}) has no memu.slot=a or memu.slot=b: this system was not started from ${startedFrom}`);
  return slot;
}

/** What every backend refuses in a trial: the running slot, attempts it cannot count, a command line for another slot. */
export function checkTrialRequest(slot: BootSlot, running: BootSlot, request: TrialRequest, maxAttempts: number): void {
  if (slot === running) throw new BootSlotsError(`slot ${slot} is the running one; a trial is for the idle slot`);
  if (!Number.isInteger(request.attempts) || request.attempts < 1 || request.attempts > maxAttempts) {
    const range = maxAttempts === 1 ? '1 attempt' : `1 to ${maxAttempts} attempts`;
    throw new BootSlotsError(`a trial needs ${range}, not ${request.attempts}`);
  }
  if (slotFromKernelCmdline(request.kernelCmdline) !== slot) throw new BootSlotsError(`the command line for slot ${slot} must carry memu.slot=${slot}: "${request.kernelCmdline}"`);
}
