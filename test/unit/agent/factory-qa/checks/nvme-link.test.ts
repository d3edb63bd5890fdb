import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateNvme, readNvmeControllers } from '../../../../../agent/factory-qa/checks/nvme-link.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture } from './qa-fixtures.ts';

const pi5 = qaFixture('pi5-nvme-hailo');
const badPi5 = qaFixture('pi5-bad-seating');
const vm = qaFixture('qemu-amd64');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));

describe('NVMe present and its PCIe link', () => {
  it('a Pi 5 drive at Gen 2 x1 passes both', async () => {
    const drives = await readNvmeControllers(join(pi5, 'sys'));
    expect(drives).toEqual([
      { name: 'nvme0', model: 'Samsung SSD 980 500GB', serial: 'S64DNX0T123456A', transport: 'pcie', link: { speedGTps: 5, width: 1, maxSpeedGTps: 8, maxWidth: 4 } },
    ]);
    expect(evaluateNvme(drives, pi5Thresholds)).toMatchObject([
      { check: 'nvme-present', verdict: 'pass', reason: 'NVMe drive nvme0 found: Samsung SSD 980 500GB (serial S64DNX0T123456A).' },
      { check: 'nvme-pcie-link', verdict: 'pass', measured: 5, unit: 'GT/s', reason: "The drive's PCIe link runs at 5 GT/s (Gen 2) x1, at least 5 GT/s (Gen 2) x1 needed." },
    ]);
  });

  it('a link that trained at Gen 1 fails, telling the operator to reseat', async () => {
    expect(evaluateNvme(await readNvmeControllers(join(badPi5, 'sys')), pi5Thresholds)[1]).toMatchObject({
      verdict: 'fail',
      measured: 2.5,
      reason: "The drive's PCIe link runs at 2.5 GT/s (Gen 1) x1, slower than the 5 GT/s (Gen 2) x1 needed: reseat the drive and the adapter's cable.",
    });
    expect(evaluateNvme([{ name: 'nvme0', link: { speedGTps: 8, width: 2 } }], { nvmeRequired: true, minPcieGTps: 8, minPcieLinkWidth: 4 })[1]!.verdict).toBe('fail');
  });

  it('no drive: fails where the profile needs one, skipped where it has none', async () => {
    const none = await readNvmeControllers(join(vm, 'sys'));
    expect(none).toEqual([]);
    expect(evaluateNvme(none, pi5Thresholds).map((o) => o.verdict)).toEqual(['fail', 'skipped']);
    expect(evaluateNvme(none, vmThresholds).map((o) => o.verdict)).toEqual(['skipped', 'skipped']);
  });
});
