import { describe, expect, it } from 'vitest';
import { factoryQaSteps } from '../../../../agent/factory-qa/qa-steps.ts';
import { qaThresholdsFor } from '../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../hardware/index.ts';

const stepsFor = (name: string) => {
  const profile = loadProfile(name);
  return Object.fromEntries(factoryQaSteps({ profile, thresholds: qaThresholdsFor(profile), dataDir: '/var/lib/memu' }).map((s) => [s.name, s.timeoutMs]));
};

describe('the QA steps', () => {
  it('run in a fixed order: cheap facts, then the loads, then the network and the bootloader', () => {
    expect(Object.keys(stepsFor('pi5'))).toEqual(['cpu', 'memory', 'nvme', 'nvme-smart', 'disk-speed', 'thermal', 'npu', 'ethernet', 'wifi', 'watchdog', 'reboot-cycles', 'pi-bootloader']);
  });

  it('bound the disk test by the slowest speeds that pass, and the load by its own length', () => {
    // 1 GiB at 200 MB/s written and 300 MB/s read, half as long again, plus 30 s.
    expect(stepsFor('pi5')['disk-speed']).toBe(43_422);
    // The VM: its 256 MiB file at 10 MB/s each way; a slow virtual disk must not time out.
    expect(stepsFor('qemu-amd64')['disk-speed']).toBe(110_531);
    expect(stepsFor('pi5').thermal).toBe(90_000);
  });
});
