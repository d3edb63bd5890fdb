import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { failed, skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * The hardware watchdog systemd feeds (RuntimeWatchdogSec): a watchdog in
 * /sys/class/watchdog with its identity, and its /dev/watchdog0 node. Without it a hung
 * kernel in a family's cupboard never comes back by itself.
 */
export interface WatchdogFacts {
  devices: { name: string; identity?: string }[];
  devNode: boolean;
}

export function evaluateWatchdog(facts: WatchdogFacts, t: { watchdogRequired: boolean }): QaCheckOutcome[] {
  if (!t.watchdogRequired) return [skipped('watchdog', 'The profile needs no hardware watchdog.')];
  const first = facts.devices[0];
  if (!first || !facts.devNode) return [failed('watchdog', `No hardware watchdog${first ? ' device node /dev/watchdog0' : ''} found: its driver is missing from the image or the board has none.`, { expected: true })];
  return [{ check: 'watchdog', verdict: 'pass', measured: first.identity ?? first.name, unit: '', threshold: { expected: true }, reason: `Hardware watchdog ${first.name}${first.identity ? ` (${first.identity})` : ''} is present.` }];
}

export async function readWatchdog(sysDir: string, devDir: string): Promise<WatchdogFacts> {
  const dir = join(sysDir, 'class/watchdog');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^watchdog\d+$/.test(n)).sort();
  const devices = await Promise.all(names.map(async (name) => ({ name, identity: (await readFile(join(dir, name, 'identity'), 'utf8').catch(() => undefined))?.trim() || undefined })));
  const devNode = await access(join(devDir, 'watchdog0')).then(() => true, () => false);
  return { devices, devNode };
}
