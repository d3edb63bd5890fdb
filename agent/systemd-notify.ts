import { runCommandOutcome } from '../shared/process/run-command.ts';

/**
 * Tells systemd the agent is ready (Type=notify). Node cannot write to NOTIFY_SOCKET
 * itself without a native addon, so it asks `systemd-notify`; the unit sets
 * NotifyAccess=all and `--pid=parent` names the agent as the main process.
 * Outside systemd (no NOTIFY_SOCKET) this does nothing.
 */
export function notifySystemd(state: 'READY=1' | 'STOPPING=1' | 'WATCHDOG=1', status?: string): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  const args = ['--pid=parent'];
  if (state === 'READY=1') args.push('--ready');
  else args.push(state);
  if (status) args.push(`--status=${status}`);
  return runCommandOutcome('systemd-notify', args).then(() => undefined);
}
