import { AUTOBOOT_TXT_MAX_BYTES, appliedSetting, parseAutobootTxt, partitionNumber } from '../../shared/contracts/autoboot-txt.ts';
import { BootSlotsError } from './slot-rules.ts';

export interface PiFirmwareBootInput {
  /** autoboot.txt on the first FAT partition; undefined when there is none. */
  autobootTxt: string | undefined;
  /** The one-shot flag `reboot '0 tryboot'` sets. */
  trybootFlag: boolean;
  /** The partitions the firmware can boot (on a Pi 5: FAT with a config.txt), by number. */
  bootablePartitions: readonly number[];
}

export interface PiFirmwareBoot {
  /** The partition started; undefined when autoboot.txt names one with nothing bootable (what the firmware does then is not modelled). */
  partition: number | undefined;
  /** With the flag the firmware reads tryboot.txt instead of config.txt, unless tryboot_a_b=1. */
  configFile: 'config.txt' | 'tryboot.txt';
  /** The flag after this boot: the firmware clears it before starting the partition. */
  trybootFlag: false;
}

/**
 * A model (a fake for tests) of the Raspberry Pi 5 firmware's choice of boot partition,
 * written from what Raspberry Pi documents ("autoboot.txt", "Fail-safe OS updates
 * (tryboot)"), not from the firmware itself: it lets tests play switch, commit and
 * fallback without a board.
 *
 * - `boot_partition` is the one autoboot.txt applies (see appliedSetting): `[tryboot]`
 *   counts only with the flag; 0 or none means the first bootable partition.
 * - The flag is one-shot: cleared by this boot, so any later reset is a normal boot.
 * - `tryboot_a_b=1` changes only the file read with the flag (config.txt, not
 *   tryboot.txt); it does not choose a partition, `[tryboot] boot_partition` does.
 *
 * Not modelled: a partition number passed to `reboot` (it overrides boot_partition), the
 * other boot modes of BOOT_ORDER, and a file over 512 bytes (refused).
 */
export function piFirmwareBoot(input: PiFirmwareBootInput): PiFirmwareBoot {
  const doc = parseAutobootTxt(input.autobootTxt ?? '');
  if (Buffer.byteLength(input.autobootTxt ?? '') > AUTOBOOT_TXT_MAX_BYTES) {
    throw new BootSlotsError(`autoboot.txt is over ${AUTOBOOT_TXT_MAX_BYTES} bytes; the firmware reads only the first ${AUTOBOOT_TXT_MAX_BYTES}, which this model does not follow`);
  }
  const tryboot = input.trybootFlag;
  const named = partitionNumber(appliedSetting(doc, 'boot_partition', { tryboot })) ?? 0;
  const partition = named === 0 ? Math.min(...input.bootablePartitions) : named;
  const trybootAB = appliedSetting(doc, 'tryboot_a_b', { tryboot })?.value === '1';
  return {
    partition: input.bootablePartitions.includes(partition) ? partition : undefined,
    configFile: tryboot && !trybootAB ? 'tryboot.txt' : 'config.txt',
    trybootFlag: false,
  };
}
