import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateIdentity, readIdentity } from '../../../../../agent/factory-qa/checks/identity.ts';
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
const verdicts = (outcomes: { check: string; verdict: string }[]) => Object.fromEntries(outcomes.map((o) => [o.check, o.verdict]));

describe('identity: serial, board model, MAC addresses', () => {
  it('a Pi 5 from its device tree; only physical interfaces count', async () => {
    const facts = await readIdentity(join(pi5, 'sys'));
    expect(facts).toEqual({
      serialNumber: 'a1b2c3d4e5f60718',
      boardModel: 'Raspberry Pi 5 Model B Rev 1.0',
      macAddresses: [
        { interface: 'eth0', address: '2c:cf:67:01:02:03' },
        { interface: 'wlan0', address: '2c:cf:67:01:02:04' },
      ],
    });
    expect(verdicts(evaluateIdentity(facts, pi5Thresholds.boardModelPattern))).toEqual({ 'serial-number': 'pass', 'board-model': 'pass', 'mac-addresses': 'pass' });
  });

  it('the VM from DMI; a Pi 5 image on a VM fails the model check, naming both', async () => {
    const facts = await readIdentity(join(vm, 'sys'));
    expect(facts).toMatchObject({ serialNumber: 'memu-vm-0001', boardModel: 'QEMU Standard PC (Q35 + ICH9, 2009)' });
    expect(evaluateIdentity(facts, vmThresholds.boardModelPattern)[1]!.verdict).toBe('pass');
    expect(evaluateIdentity(facts, pi5Thresholds.boardModelPattern)[1]).toMatchObject({
      verdict: 'fail',
      reason: 'The board is a QEMU Standard PC (Q35 + ICH9, 2009), not the board this image is for (^Raspberry Pi 5\\b).',
    });
  });

  it('a placeholder serial counts as none and fails', () => {
    expect(evaluateIdentity({ macAddresses: [], boardModel: 'x' }, '.')).toMatchObject([
      { check: 'serial-number', verdict: 'fail', reason: expect.stringContaining('no serial number') },
      { verdict: 'pass' },
      { check: 'mac-addresses', verdict: 'fail', measured: 0 },
    ]);
  });
});
