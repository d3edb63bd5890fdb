import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateWatchdog, readWatchdog } from '../../../../../agent/factory-qa/checks/watchdog.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture } from './qa-fixtures.ts';

// Board trees written by hand from what the kernel shows on a Pi 5 (device tree, rpi_volt,
// bcm2835-wdt, macb, brcmfmac, a Hailo-8L and an NVMe drive behind a PCIe switch), the
// same Pi with a badly seated HAT, and the qemu-amd64 VM. See test/fixtures/factory-qa/README.md.
const pi5 = qaFixture('pi5-nvme-hailo');
const vm = qaFixture('qemu-amd64');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));

describe('watchdog', () => {
  it("the Pi's and the VM's watchdogs pass with their identity; none fails", async () => {
    expect(evaluateWatchdog(await readWatchdog(join(pi5, 'sys'), join(pi5, 'dev')), pi5Thresholds)[0]).toMatchObject({ verdict: 'pass', measured: 'Broadcom BCM2835 Watchdog timer' });
    expect(evaluateWatchdog(await readWatchdog(join(vm, 'sys'), join(vm, 'dev')), vmThresholds)[0]).toMatchObject({ verdict: 'pass', measured: 'i6300ESB timer' });
    expect(evaluateWatchdog({ devices: [], devNode: false }, vmThresholds)[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('No hardware watchdog found') });
  });
});
