import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeJsonDurably } from '../../../shared/files/durable-files.ts';
import { skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * Warm reboots in a row, each boot timed: the Pi 5's best-known failure is an NVMe drive
 * that is not found again after a warm reboot, and a unit that hangs at one boot in twenty
 * must not ship. The QA boot records every boot it sees (its kernel boot id and how long
 * after the kernel started the agent got to QA) on the data partition, and reboots until
 * it has seen the profile's number of reboots; a drive that vanishes takes the root file
 * system with it, so that unit never comes back to report, which the station sees as no
 * report. The check then reads the record.
 */
export const REBOOT_RECORD_PATH = 'factory-qa/reboot-cycles.json';

const rebootRecordSchema = z.object({
  format: z.literal('memu-qa-reboots/1'),
  boots: z.array(z.object({ bootId: z.string().min(1), upSeconds: z.number().nonnegative() })),
});
export type RebootRecord = z.infer<typeof rebootRecordSchema>;

/** One boot as the kernel tells it: `/proc/sys/kernel/random/boot_id` and the first number of `/proc/uptime`. */
export interface ThisBoot {
  bootId: string;
  upSeconds: number;
}

export async function readThisBoot(procDir = '/proc'): Promise<ThisBoot> {
  const bootId = (await readFile(join(procDir, 'sys/kernel/random/boot_id'), 'utf8')).trim();
  const upSeconds = Number.parseFloat((await readFile(join(procDir, 'uptime'), 'utf8')).split(' ')[0] ?? '');
  if (!bootId || !Number.isFinite(upSeconds)) throw new Error(`cannot tell this boot from ${procDir}: no boot id or uptime`);
  return { bootId, upSeconds: Math.round(upSeconds * 10) / 10 };
}

/** An unreadable record counts as none: the cycles start again, which costs time but never passes a unit untested. */
export async function readRebootRecord(dataDir: string): Promise<RebootRecord> {
  try {
    return rebootRecordSchema.parse(JSON.parse(await readFile(join(dataDir, REBOOT_RECORD_PATH), 'utf8')));
  } catch {
    return { format: 'memu-qa-reboots/1', boots: [] };
  }
}

/**
 * Adds this boot to the record (once: a second call in the same boot changes nothing) and
 * says how many reboots are still to come. The first boot is not a reboot.
 */
export async function recordBoot(dataDir: string, boot: ThisBoot, cycles: number): Promise<{ record: RebootRecord; rebootsLeft: number }> {
  const record = await readRebootRecord(dataDir);
  if (!record.boots.some((b) => b.bootId === boot.bootId)) {
    record.boots.push(boot);
    await mkdir(join(dataDir, 'factory-qa'), { recursive: true });
    await writeJsonDurably(join(dataDir, REBOOT_RECORD_PATH), record);
  }
  return { record, rebootsLeft: Math.max(0, cycles - (record.boots.length - 1)) };
}

export function evaluateRebootCycles(record: RebootRecord, t: { rebootCycles: number; maxBootSeconds: number }): QaCheckOutcome[] {
  if (t.rebootCycles === 0) return [skipped('reboot-cycles', 'The profile asks for no reboot cycles.')];
  const reboots = record.boots.slice(1);
  const slowest = reboots.reduce((max, b) => Math.max(max, b.upSeconds), 0);
  const slow = reboots.filter((b) => b.upSeconds > t.maxBootSeconds);
  const threshold = { min: t.rebootCycles };
  if (reboots.length < t.rebootCycles) {
    return [{ check: 'reboot-cycles', verdict: 'fail', measured: reboots.length, unit: 'reboots', threshold, reason: `Only ${reboots.length} of ${t.rebootCycles} warm reboots were recorded.` }];
  }
  if (slow.length > 0) {
    return [
      {
        check: 'reboot-cycles',
        verdict: 'fail',
        measured: reboots.length,
        unit: 'reboots',
        threshold,
        reason: `${slow.length} of ${reboots.length} reboots took longer than ${t.maxBootSeconds} s to reach QA (slowest ${slowest} s): check the drive and its adapter.`,
      },
    ];
  }
  return [{ check: 'reboot-cycles', verdict: 'pass', measured: reboots.length, unit: 'reboots', threshold, reason: `${reboots.length} warm reboots in a row, each back within ${t.maxBootSeconds} s (slowest ${slowest} s).` }];
}
