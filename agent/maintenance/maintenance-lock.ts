/**
 * The device's maintenance lock: work that changes or reads the whole box at once (a
 * backup, an update, a restore) takes it, so a backup never reads a stack an update is
 * replacing and an update never restarts services under a backup. One holder at a time;
 * a caller either is refused at once with the holder named (a button the admin pressed)
 * or waits its turn in order (a scheduled run).
 */

export type MaintenanceKind = 'backup' | 'update' | 'restore' | 'restore-drill';

const DESCRIPTIONS: Record<MaintenanceKind, string> = {
  backup: 'a backup',
  update: 'an update',
  restore: 'a restore',
  'restore-drill': 'a restore drill',
};

export interface MaintenanceHolder {
  kind: MaintenanceKind;
  /** Epoch ms since when it holds the lock. */
  since: number;
}

export class MaintenanceBusyError extends Error {
  constructor(
    readonly holder: MaintenanceHolder,
    readonly requested: MaintenanceKind,
  ) {
    super(
      `${capitalise(DESCRIPTIONS[requested])} cannot start while ${DESCRIPTIONS[holder.kind]} is running (since ${new Date(holder.since).toISOString()}). ` +
        `Try again when it has finished.`,
    );
    this.name = 'MaintenanceBusyError';
  }
}

const capitalise = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

export interface MaintenanceLock {
  /**
   * Runs `fn` holding the lock. `wait: false` (the default) refuses with
   * MaintenanceBusyError when the lock is held; `wait: true` queues behind the holder and
   * those already waiting.
   */
  run<T>(kind: MaintenanceKind, fn: () => Promise<T>, opts?: { wait?: boolean }): Promise<T>;
  /** Who holds it now. */
  holder(): MaintenanceHolder | undefined;
  /** How many callers wait for it. */
  waiting(): number;
}

export function createMaintenanceLock(now: () => number = Date.now): MaintenanceLock {
  let current: MaintenanceHolder | undefined;
  const queue: Array<{ kind: MaintenanceKind; resume: () => void }> = [];

  // The lock passes straight to the next in line, so nobody arriving meanwhile can slip in.
  const release = () => {
    const next = queue.shift();
    current = next ? { kind: next.kind, since: now() } : undefined;
    next?.resume();
  };

  return {
    async run(kind, fn, opts = {}) {
      if (current) {
        if (!opts.wait) throw new MaintenanceBusyError(current, kind);
        await new Promise<void>((resume) => queue.push({ kind, resume }));
      } else {
        current = { kind, since: now() };
      }
      try {
        return await fn();
      } finally {
        release();
      }
    },
    holder: () => current,
    waiting: () => queue.length,
  };
}
