import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateNpu, readNpu } from '../../../../../agent/factory-qa/checks/npu.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture } from './qa-fixtures.ts';

// Board trees written by hand from what the kernel shows on a Pi 5 (device tree, rpi_volt,
// bcm2835-wdt, macb, brcmfmac, a Hailo-8L and an NVMe drive behind a PCIe switch), the
// same Pi with a badly seated HAT, and the qemu-amd64 VM. See test/fixtures/factory-qa/README.md.
const pi5 = qaFixture('pi5-nvme-hailo');
const badPi5 = qaFixture('pi5-bad-seating');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));

describe('npu', () => {
  it('a Hailo-8L behind the switch with its driver answering passes', async () => {
    const facts = await readNpu(join(pi5, 'sys'), join(pi5, 'dev'), true);
    expect(evaluateNpu(facts, pi5Thresholds, 'hailo-optional')).toEqual([
      { check: 'npu', verdict: 'pass', measured: 'Hailo-8/8L', unit: '', threshold: { expected: 'Hailo on PCIe' }, reason: 'A Hailo-8/8L is on PCIe at 0001:04:00.0, its driver answers as /dev/hailo0.' },
    ]);
  });

  it('no NPU: skipped when optional, failed when the SKU needs one; no driver answer fails', async () => {
    const facts = await readNpu(join(badPi5, 'sys'), join(badPi5, 'dev'), true);
    expect(evaluateNpu(facts, pi5Thresholds, 'hailo-optional')[0]!.verdict).toBe('skipped');
    expect(evaluateNpu(facts, { npuRequired: true }, 'hailo-optional')[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('No Hailo NPU on PCIe') });
    const noDriver = { ...(await readNpu(join(pi5, 'sys'), join(pi5, 'dev'), true)), driverNode: false };
    expect(evaluateNpu(noDriver, pi5Thresholds, 'hailo-optional')[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('no /dev/hailo0') });
    expect(evaluateNpu(facts, pi5Thresholds, 'none')[0]!.verdict).toBe('skipped');
  });
});
