import { describe, expect, it } from 'vitest';
import { createMaintenanceLock, MaintenanceBusyError } from '../../../../agent/maintenance/maintenance-lock.ts';

const gate = () => {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
};

describe('maintenance lock', () => {
  it('refuses an update while a backup runs, naming the backup and since when', async () => {
    const lock = createMaintenanceLock(() => Date.UTC(2026, 11, 5, 3, 30));
    const backup = gate();
    const running = lock.run('backup', () => backup.opened);
    expect(lock.holder()).toEqual({ kind: 'backup', since: Date.UTC(2026, 11, 5, 3, 30) });
    const refused = await lock.run('update', async () => 'applied').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MaintenanceBusyError);
    expect((refused as Error).message).toBe('An update cannot start while a backup is running (since 2026-12-05T03:30:00.000Z). Try again when it has finished.');
    backup.open();
    await running;
    expect(lock.holder()).toBeUndefined();
    await expect(lock.run('update', async () => 'applied')).resolves.toBe('applied');
  });

  it('queues a waiting caller behind the holder, in order, and never runs two at once', async () => {
    const lock = createMaintenanceLock();
    const order: string[] = [];
    let inside = 0;
    const work = (name: string) => async () => {
      inside += 1;
      expect(inside).toBe(1);
      order.push(`${name} start`);
      await new Promise((r) => setTimeout(r, 5));
      order.push(`${name} end`);
      inside -= 1;
      return name;
    };
    const results = await Promise.all([lock.run('update', work('update')), lock.run('backup', work('backup'), { wait: true }), lock.run('restore', work('restore'), { wait: true })]);
    expect(results).toEqual(['update', 'backup', 'restore']);
    expect(order).toEqual(['update start', 'update end', 'backup start', 'backup end', 'restore start', 'restore end']);
  });

  it('passes the lock to the next waiter even when the holder fails, and refuses a newcomer meanwhile', async () => {
    const lock = createMaintenanceLock();
    const failing = lock.run('update', async () => {
      throw new Error('bad release');
    });
    const backup = gate();
    const waiter = lock.run(
      'backup',
      async () => {
        await backup.opened;
        return lock.holder()?.kind;
      },
      { wait: true },
    );
    await expect(failing).rejects.toThrow('bad release');
    expect(lock.holder()?.kind).toBe('backup');
    await expect(lock.run('update', async () => 'x')).rejects.toBeInstanceOf(MaintenanceBusyError);
    backup.open();
    await expect(waiter).resolves.toBe('backup');
    expect(lock.waiting()).toBe(0);
  });
});
