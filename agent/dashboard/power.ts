import { runCommand } from '../../shared/process/run-command.ts';

/** Restarting and shutting the device down; injected, so tests never reboot the machine they run on. */
export interface PowerControl {
  reboot(): Promise<void>;
  powerOff(): Promise<void>;
}

/**
 * systemd does it (`systemctl reboot`/`poweroff` ask PID 1 over D-Bus), stopping every
 * service in order, the stack's containers and the agent itself included.
 */
export function systemctlPower(): PowerControl {
  return {
    reboot: async () => void (await runCommand('systemctl', ['reboot'])),
    powerOff: async () => void (await runCommand('systemctl', ['poweroff'])),
  };
}
