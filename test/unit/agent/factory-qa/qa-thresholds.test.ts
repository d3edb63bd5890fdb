import { describe, expect, it } from 'vitest';
import { MISSING_FROM_PROFILE, qaThresholdsFor } from '../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../hardware/index.ts';

describe('QA thresholds', () => {
  it("take the profile's qa block, its Wi-Fi and bootloader needs, and defaults for what the profile lacks", () => {
    const pi5 = loadProfile('pi5');
    const t = qaThresholdsFor(pi5);
    expect(t).toMatchObject({ ...pi5.qa, wifiRequired: true, bootloader: { minimumDate: '2025-06-09', bootOrder: '0xf416' }, minCpuCores: 4, minPcieGTps: 5 });
    expect(qaThresholdsFor({ ...pi5, qa: { ...pi5.qa, minMemoryMiB: 3800 } }).minMemoryMiB).toBe(3800);
    const vm = qaThresholdsFor(loadProfile('qemu-amd64'));
    expect(vm).toMatchObject({ minMemoryMiB: 1024, wifiRequired: false, nvmeRequired: false, minEthernetMbps: 0 });
    expect(vm.bootloader).toBeUndefined();
    expect(qaThresholdsFor(pi5, { npuRequired: true }).npuRequired).toBe(true);
  });

  it('every field the profile lacks has a default for every profile', () => {
    for (const name of ['pi5', 'nuc', 'qemu-amd64']) {
      const t = qaThresholdsFor(loadProfile(name)) as unknown as Record<string, unknown>;
      for (const field of MISSING_FROM_PROFILE.filter((f) => f !== 'cpuModelPattern')) expect(t[field], `${name}.${field}`).toBeDefined();
    }
  });
});
