import { bootOrderModes, BOOT_MODES, type BootloaderFacts } from '../../health/index.ts';
import { skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * The Raspberry Pi 5's bootloader (in its EEPROM): new enough for the image (the profile's
 * minimumBootloaderDate: from 2025-06-09 it loads files of 32 MiB and more from NVMe) and
 * trying the profile's first boot mode first (BOOT_ORDER's lowest nibble; 6 is NVMe).
 * The facts are the health check's (agent/health/checks/bootloader.ts: the device tree's
 * /chosen/bootloader and the EEPROM configuration's NVMEM copy). Where the kernel exposes
 * no copy of the configuration, the mode this start came from stands in for the order.
 */
export function evaluatePiBootloader(facts: BootloaderFacts | undefined, t: { bootloader?: { minimumDate: string; bootOrder: string } }): QaCheckOutcome[] {
  if (!t.bootloader) return [skipped('pi-bootloader', 'The profile has no Raspberry Pi bootloader.')];
  const wanted = t.bootloader;
  const firstWanted = bootOrderModes(wanted.bootOrder)[0];
  const name = (mode: number | undefined) => (mode === undefined ? 'nothing' : (BOOT_MODES[mode] ?? `mode 0x${mode.toString(16)}`));
  const buildDate = facts?.builtAt === undefined ? undefined : new Date(facts.builtAt * 1000).toISOString().slice(0, 10);
  const base = { check: 'pi-bootloader', measured: buildDate ?? 'unknown', unit: '', threshold: { expected: `>= ${wanted.minimumDate}, ${name(firstWanted)} first` } };
  if (!facts || buildDate === undefined) {
    return [{ ...base, verdict: 'fail', reason: 'The firmware left no bootloader build time in the device tree (/chosen/bootloader): is this a Raspberry Pi 5 with its EEPROM bootloader?' }];
  }
  const problems: string[] = [];
  if (buildDate < wanted.minimumDate) problems.push(`its bootloader is from ${buildDate}, older than the ${wanted.minimumDate} the image needs (update the EEPROM with rpi-eeprom)`);
  let order: string;
  if (facts.bootOrder !== undefined) {
    const first = bootOrderModes(facts.bootOrder)[0];
    order = `BOOT_ORDER ${facts.bootOrder}`;
    if (first !== firstWanted) problems.push(`its BOOT_ORDER ${facts.bootOrder} tries ${name(first)} first, not ${name(firstWanted)} (the image sets ${wanted.bootOrder})`);
  } else {
    order = `this start from ${name(facts.bootMode)} (the kernel shows no copy of BOOT_ORDER)`;
    if (facts.bootMode !== firstWanted) problems.push(`it started from ${name(facts.bootMode)}, not ${name(firstWanted)}, and its BOOT_ORDER cannot be read`);
  }
  if (problems.length > 0) return [{ ...base, verdict: 'fail', reason: `The board will not boot this image reliably: ${problems.join('; ')}.` }];
  return [{ ...base, verdict: 'pass', reason: `Bootloader from ${buildDate} with ${order}: new enough and ${name(firstWanted)} first.` }];
}
