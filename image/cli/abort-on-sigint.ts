import type { Logger } from '../host/log.ts';

/**
 * Turns the first Ctrl-C into an abort of the flash (`memu flash`, `memu qa station flash`),
 * which then reports what state each target is in (and the --json result line); a second
 * Ctrl-C stops the process at once (a target's partition table is cleared before writing,
 * so even that leaves no drive that looks good).
 */
export function abortOnSigint(log: Logger): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  // Stays attached after the first signal: execa's child-process cleanup re-raises SIGINT
  // (killing memu before it can report) when it sees no other listener.
  const onSigint = (): void => {
    if (!controller.signal.aborted) {
      log.warn('stopping: finishing the writes in flight (Ctrl-C again to quit at once)');
      return controller.abort();
    }
    process.removeListener('SIGINT', onSigint);
    process.kill(process.pid, 'SIGINT');
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, release: () => process.removeListener('SIGINT', onSigint) };
}
