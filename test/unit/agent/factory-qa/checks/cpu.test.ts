import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateCpu, readCpu } from '../../../../../agent/factory-qa/checks/cpu.ts';
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

describe('cpu', () => {
  it('a Pi 5: four Cortex-A76 cores from the arm64 part number', async () => {
    const facts = await readCpu(join(pi5, 'proc'));
    expect(facts).toEqual({ cores: 4, model: 'Cortex-A76' });
    expect(evaluateCpu(facts, pi5Thresholds)).toMatchObject([
      { check: 'cpu-cores', verdict: 'pass', measured: 4, threshold: { min: 4 } },
      { check: 'cpu-model', verdict: 'pass', measured: 'Cortex-A76' },
    ]);
  });

  it('too few cores or another core fails; a profile without a model pattern skips the model', async () => {
    expect(evaluateCpu({ cores: 3, model: 'Cortex-A72' }, pi5Thresholds).map((o) => o.verdict)).toEqual(['fail', 'fail']);
    const facts = await readCpu(join(vm, 'proc'));
    expect(facts).toEqual({ cores: 2, model: 'QEMU Virtual CPU version 2.5+' });
    expect(evaluateCpu(facts, vmThresholds).map((o) => o.verdict)).toEqual(['pass', 'skipped']);
  });
});
