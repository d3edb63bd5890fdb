import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateEthernet, evaluateWifi, readEthernet, readWifi } from '../../../../../agent/factory-qa/checks/network.ts';
import { qaThresholdsFor } from '../../../../../agent/factory-qa/qa-thresholds.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { qaFixture, recordedRunner, toolOutput } from './qa-fixtures.ts';

// Board trees written by hand from what the kernel shows on a Pi 5 (device tree, rpi_volt,
// bcm2835-wdt, macb, brcmfmac, a Hailo-8L and an NVMe drive behind a PCIe switch), the
// same Pi with a badly seated HAT, and the qemu-amd64 VM. See test/fixtures/factory-qa/README.md.
const pi5 = qaFixture('pi5-nvme-hailo');
const badPi5 = qaFixture('pi5-bad-seating');
const vm = qaFixture('qemu-amd64');
const pi5Thresholds = qaThresholdsFor(loadProfile('pi5'));
const vmThresholds = qaThresholdsFor(loadProfile('qemu-amd64'));

describe('network', () => {
  it('gigabit Ethernet link passes; Wi-Fi scan sees two networks', async () => {
    expect(evaluateEthernet(await readEthernet(join(pi5, 'sys')), pi5Thresholds)).toEqual([
      { check: 'ethernet-link', verdict: 'pass', measured: 1000, unit: 'Mb/s', threshold: { min: 1000 }, reason: 'Link speed of eth0: 1000 Mb/s, at least 1000 Mb/s needed.' },
    ]);
    const run = recordedRunner({ ip: {}, iw: { stdout: toolOutput('iw-6.9-scan-two-networks.txt') } });
    const wifi = await readWifi(join(pi5, 'sys'), run);
    expect(run.calls).toEqual([['ip', 'link', 'set', 'wlan0', 'up'], ['iw', 'dev', 'wlan0', 'scan']]);
    expect(evaluateWifi(wifi, pi5Thresholds)).toMatchObject([{ check: 'wifi-scan', verdict: 'pass', measured: 2 }]);
  });

  it('no carrier fails naming the port; a 100 Mb/s link fails; the VM needs a link only', async () => {
    expect(evaluateEthernet(await readEthernet(join(badPi5, 'sys')), pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', reason: 'No link on eth0: check the cable and the switch port.' });
    expect(evaluateEthernet([{ name: 'eth0', carrier: true, speedMbps: 100 }], pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', measured: 100 });
    expect(evaluateEthernet(await readEthernet(join(vm, 'sys')), vmThresholds)[0]).toMatchObject({ verdict: 'pass', reason: 'enp0s2 has a link.' });
  });

  it('Wi-Fi: no radio fails, an empty scan fails, a profile without Wi-Fi skips', async () => {
    expect(evaluateWifi(await readWifi(join(vm, 'sys'), recordedRunner({})), pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', reason: expect.stringContaining('No Wi-Fi interface') });
    expect(evaluateWifi({ interface: 'wlan0', networksSeen: 0 }, pi5Thresholds)[0]).toMatchObject({ verdict: 'fail', measured: 0 });
    expect(evaluateWifi(undefined, vmThresholds)[0]!.verdict).toBe('skipped');
  });
});
