import { describe, expect, it } from 'vitest';
import { evaluatePiBootloader } from '../../../../../agent/factory-qa/checks/pi-bootloader.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';

const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));
const NOV_2025 = Date.UTC(2025, 10, 5, 12) / 1000;
const DEC_2023 = Date.UTC(2023, 11, 6, 12) / 1000;

// The facts as agent/health/checks/bootloader.ts reads them (its reader is tested there, on a recorded /sys layout).
describe('Pi 5 bootloader', () => {
  it('new enough with NVMe first passes; old or SD-first fails with both reasons', () => {
    expect(pi5Thresholds.bootloader).toEqual({ minimumDate: '2025-06-09', bootOrder: '0xf416' });
    expect(evaluatePiBootloader({ builtAt: NOV_2025, bootMode: 6, bootOrder: '0xf416' }, pi5Thresholds)[0]).toMatchObject({
      verdict: 'pass',
      measured: '2025-11-05',
      reason: 'Bootloader from 2025-11-05 with BOOT_ORDER 0xf416: new enough and NVMe first.',
    });
    expect(evaluatePiBootloader({ builtAt: DEC_2023, bootMode: 1, bootOrder: '0xf461' }, pi5Thresholds)[0]).toMatchObject({
      verdict: 'fail',
      reason:
        'The board will not boot this image reliably: its bootloader is from 2023-12-06, older than the 2025-06-09 the image needs (update the EEPROM with rpi-eeprom); its BOOT_ORDER 0xf461 tries SD card first, not NVMe (the image sets 0xf416).',
    });
  });

  it('without a readable BOOT_ORDER, the mode this start came from stands in for it', () => {
    expect(evaluatePiBootloader({ builtAt: NOV_2025, bootMode: 6 }, pi5Thresholds)[0]).toMatchObject({ verdict: 'pass', reason: expect.stringContaining('this start from NVMe (the kernel shows no copy of BOOT_ORDER)') });
    expect(evaluatePiBootloader({ builtAt: NOV_2025, bootMode: 1 }, pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('it started from SD card, not NVMe') });
  });

  it('fails a Pi profile on a board whose firmware left no facts, and is skipped on boards without the Pi firmware', () => {
    expect(evaluatePiBootloader(undefined, pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('/chosen/bootloader') });
    expect(evaluatePiBootloader({ builtAt: NOV_2025, bootOrder: '0xf416' }, vmThresholds)[0]!.verdict).toBe('skipped');
  });
});
