import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { failed, skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * The NPU: a Hailo accelerator enumerated on PCIe (vendor 0x1e60; 0x2864 is the Hailo-8
 * and the Pi AI Kit's Hailo-8L), and its driver answering as /dev/hailo0 where the image
 * has the driver. On a Pi 5 the NPU shares the one PCIe lane with the drive through a
 * switch, so a missing NPU there is often a HAT problem, not a dead chip.
 */
export interface NpuFacts {
  pciDevices: { address: string; vendor: string; device: string }[];
  /** /dev/hailo0 exists: the hailo_pci driver bound the device. */
  driverNode: boolean;
  /** The image carries the driver (hailo-all on a Pi). */
  imageHasDriver: boolean;
}

const HAILO_VENDOR = '0x1e60';
const HAILO_DEVICES: Record<string, string> = { '0x2864': 'Hailo-8/8L', '0x26a2': 'Hailo-10H', '0x45c4': 'Hailo-15' };

export function evaluateNpu(facts: NpuFacts, t: { npuRequired: boolean }, profileNpu: 'none' | 'hailo-optional'): QaCheckOutcome[] {
  if (profileNpu === 'none') return [skipped('npu', 'The profile has no NPU.')];
  const hailo = facts.pciDevices.find((d) => d.vendor === HAILO_VENDOR);
  if (!hailo) {
    if (!t.npuRequired) return [skipped('npu', "The profile's NPU is optional and this unit has none fitted.")];
    return [failed('npu', 'No Hailo NPU on PCIe: check that the card is seated (on a Pi 5, that the PCIe switch HAT is connected).', { expected: 'Hailo on PCIe' })];
  }
  const name = HAILO_DEVICES[hailo.device] ?? `Hailo device ${hailo.device}`;
  const base = { check: 'npu', measured: name, unit: '', threshold: { expected: 'Hailo on PCIe' } };
  if (facts.imageHasDriver && !facts.driverNode) return [{ ...base, verdict: 'fail', reason: `A ${name} is on PCIe at ${hailo.address}, but its driver did not answer (no /dev/hailo0): the driver, firmware and HailoRT versions may not match.` }];
  const driver = facts.imageHasDriver ? ', its driver answers as /dev/hailo0' : '; the image has no driver to ask';
  return [{ ...base, verdict: 'pass', reason: `A ${name} is on PCIe at ${hailo.address}${driver}.` }];
}

export async function readNpu(sysDir: string, devDir: string, imageHasDriver: boolean): Promise<NpuFacts> {
  const dir = join(sysDir, 'bus/pci/devices');
  const addresses = (await readdir(dir).catch(() => [] as string[])).sort();
  const pciDevices = await Promise.all(
    addresses.map(async (address) => {
      const read = async (file: string) => (await readFile(join(dir, address, file), 'utf8').catch(() => ''))?.trim().toLowerCase() ?? '';
      return { address, vendor: await read('vendor'), device: await read('device') };
    }),
  );
  const driverNode = await access(join(devDir, 'hailo0')).then(() => true, () => false);
  return { pciDevices, driverNode, imageHasDriver };
}
