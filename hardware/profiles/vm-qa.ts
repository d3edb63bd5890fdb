import type { ProfileInput } from '../profile.ts';

/** The QA thresholds of both virtual machines: a virtio disk and NIC (no link speed), whatever cores QEMU gives it, the i6300esb watchdog. */
export const VM_QA: ProfileInput['qa'] = {
  minMemoryMiB: 1024,
  memoryTestMiB: 16,
  minCpuCores: 1,
  boardModelPattern: '^QEMU\\b|^Standard PC',
  thermalSensorRequired: false,
  maxIdleTemperatureC: 90,
  maxLoadTemperatureC: 95,
  stressSeconds: 5,
  nvmeRequired: false,
  minPcieGTps: 0,
  minPcieLinkWidth: 0,
  maxNvmePercentUsed: 1,
  // A quarter of a real unit's: under emulation the run is CPU-bound, and a quarter still overruns any disk cache QEMU keeps.
  diskTestMiB: 256,
  minDiskWriteMBps: 10,
  minDiskReadMBps: 10,
  npuRequired: false,
  minEthernetMbps: 0,
  minWifiNetworks: 0,
  watchdogRequired: true,
  rebootCycles: 0,
  // Under emulation on a busy 2-core machine a boot takes minutes.
  maxBootSeconds: 900,
};
