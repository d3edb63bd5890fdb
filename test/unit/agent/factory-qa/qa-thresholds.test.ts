import { describe, expect, it } from 'vitest';
import { qaThresholdsFor } from '../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile, profileNames, validateProfile } from '../../../../hardware/index.ts';

describe('QA thresholds', () => {
  it("are the profile's qa block, its Wi-Fi and its bootloader needs", () => {
    const pi5 = loadProfile('pi5');
    const t = qaThresholdsFor(pi5);
    expect(t).toEqual({ ...pi5.qa, wifiRequired: true, bootloader: { minimumDate: '2025-06-09', bootOrder: '0xf416' } });
    expect(t).toMatchObject({ minCpuCores: 4, cpuModelPattern: '^Cortex-A76$', minPcieGTps: 5, minPcieLinkWidth: 1, maxLoadTemperatureC: 85 });
    expect(qaThresholdsFor({ ...pi5, qa: { ...pi5.qa, minMemoryMiB: 3800 } }).minMemoryMiB).toBe(3800);
    const vm = qaThresholdsFor(loadProfile('qemu-amd64'));
    expect(vm).toMatchObject({ minMemoryMiB: 1024, memoryTestMiB: 16, wifiRequired: false, nvmeRequired: false, minEthernetMbps: 0 });
    expect(vm.bootloader).toBeUndefined();
    expect(qaThresholdsFor(pi5, { npuRequired: true }).npuRequired).toBe(true);
  });

  it('every profile states each threshold itself, and its patterns compile', () => {
    for (const name of profileNames()) {
      const { qa } = loadProfile(name);
      expect(Object.keys(qa).filter((k) => k !== 'cpuModelPattern').sort(), name).toEqual(
        ['boardModelPattern', 'diskTestMiB', 'maxBootSeconds', 'maxIdleTemperatureC', 'maxLoadTemperatureC', 'maxNvmePercentUsed', 'memoryTestMiB', 'minCpuCores', 'minDiskReadMBps', 'minDiskWriteMBps', 'minEthernetMbps', 'minMemoryMiB', 'minPcieGTps', 'minPcieLinkWidth', 'minWifiNetworks', 'npuRequired', 'nvmeRequired', 'rebootCycles', 'stressSeconds', 'thermalSensorRequired', 'watchdogRequired'],
      );
      expect(() => new RegExp(qa.boardModelPattern)).not.toThrow();
    }
  });

  it('a profile with a threshold missing or a pattern that does not compile is refused, naming the field', () => {
    const pi5 = loadProfile('pi5');
    const { minPcieGTps: _, ...withoutLink } = pi5.qa;
    expect(() => validateProfile({ ...pi5, qa: withoutLink }, 'pi5-edited')).toThrow(/qa\.minPcieGTps/);
    expect(() => validateProfile({ ...pi5, qa: { ...pi5.qa, boardModelPattern: '^Raspberry Pi (5' } }, 'pi5-edited')).toThrow(/qa\.boardModelPattern.*not a valid regular expression/);
  });
});
