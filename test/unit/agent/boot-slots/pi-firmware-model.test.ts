import { describe, expect, it } from 'vitest';
import { parseAutobootTxt, renderAutobootTxt, setBootPartition } from '../../../../shared/contracts/autoboot-txt.ts';
import { piFirmwareBoot } from '../../../../agent/boot-slots/pi-firmware-model.ts';

/** The Pi 5 layout: bootconfig is partition 1, boot A 2, boot B 3. */
const bootable = [2, 3];
const abFile = '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n';

/** Resets the board `flags.length` times, with the tryboot flag set before the boots marked true; the partitions started. */
function boots(autobootTxt: string, flags: boolean[]): (number | undefined)[] {
  let flag = false;
  return flags.map((setFlag) => {
    const boot = piFirmwareBoot({ autobootTxt, trybootFlag: flag || setFlag, bootablePartitions: bootable });
    flag = boot.trybootFlag;
    return boot.partition;
  });
}

describe('the model of the Pi 5 firmware', () => {
  it('boots [all] boot_partition normally, reading config.txt', () => {
    expect(piFirmwareBoot({ autobootTxt: abFile, trybootFlag: false, bootablePartitions: bootable })).toEqual({ partition: 2, configFile: 'config.txt', trybootFlag: false });
  });

  it('boots [tryboot] boot_partition once with the flag, which that boot clears', () => {
    expect(piFirmwareBoot({ autobootTxt: abFile, trybootFlag: true, bootablePartitions: bootable })).toEqual({ partition: 3, configFile: 'config.txt', trybootFlag: false });
    expect(boots(abFile, [false, true, false, false])).toEqual([2, 3, 2, 2]);
  });

  it('falls back: a reset after a trial that was not committed boots the old partition', () => {
    expect(boots(abFile, [true, false])).toEqual([3, 2]);
  });

  it('commit: once [all] names the new partition, every reset boots it', () => {
    const committed = renderAutobootTxt(setBootPartition(setBootPartition(parseAutobootTxt(abFile), 'all', 3), 'tryboot', 2));
    expect(boots(committed, [false, false, false])).toEqual([3, 3, 3]);
  });

  it('without tryboot_a_b, a tryboot boot reads tryboot.txt instead of config.txt', () => {
    const fileLevel = '[all]\nboot_partition=2\n[tryboot]\nboot_partition=3\n';
    expect(piFirmwareBoot({ autobootTxt: fileLevel, trybootFlag: true, bootablePartitions: bootable })).toMatchObject({ partition: 3, configFile: 'tryboot.txt' });
    expect(piFirmwareBoot({ autobootTxt: fileLevel, trybootFlag: false, bootablePartitions: bootable }).configFile).toBe('config.txt');
  });

  it('tryboot_a_b alone chooses no partition: without [tryboot] the flag restarts the [all] partition', () => {
    const aOnly = '[all]\ntryboot_a_b=1\nboot_partition=2\n';
    expect(piFirmwareBoot({ autobootTxt: aOnly, trybootFlag: true, bootablePartitions: bootable })).toEqual({ partition: 2, configFile: 'config.txt', trybootFlag: false });
  });

  it('boots the first bootable partition for boot_partition=0, none, or no autoboot.txt', () => {
    for (const autobootTxt of ['[all]\nboot_partition=0\n', '# nothing\n', undefined]) {
      expect(piFirmwareBoot({ autobootTxt, trybootFlag: false, bootablePartitions: [3, 2] }).partition).toBe(2);
    }
  });

  it('follows the filters: [none] never applies, an [all] after [tryboot] overrides it even with the flag', () => {
    expect(boots('[all]\nboot_partition=2\n[none]\nboot_partition=3\n', [true])).toEqual([2]);
    expect(boots('[tryboot]\nboot_partition=3\n[all]\nboot_partition=2\n', [true])).toEqual([2]);
  });

  it('starts nothing from a partition that holds no bootable slot', () => {
    expect(piFirmwareBoot({ autobootTxt: abFile, trybootFlag: true, bootablePartitions: [2] }).partition).toBeUndefined();
  });

  it('refuses what it does not model: an undocumented filter setting boot_partition, a file over 512 bytes', () => {
    expect(() => boots('[all]\nboot_partition=2\n[cm5]\nboot_partition=3\n', [false])).toThrow(/line 4: boot_partition is set under \[cm5\]/);
    expect(() => boots(`${abFile}#${'x'.repeat(512)}\n`, [false])).toThrow(/over 512 bytes/);
  });
});
