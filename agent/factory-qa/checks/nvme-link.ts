import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { failed, formatNumber, skipped, type QaCheckOutcome } from './qa-check.ts';

/**
 * The NVMe drive and the PCIe link it trained to, from sysfs: /sys/class/nvme/nvmeN
 * (model, serial, transport) and its PCI device's current_link_speed ("5.0 GT/s PCIe")
 * and current_link_width ("1"). A Pi 5 has one lane, Gen 2 officially, Gen 3 when
 * enabled; a link that trains slower than it should means a bad cable, HAT or seating.
 */
export interface NvmeControllerFacts {
  name: string;
  model?: string;
  serial?: string;
  transport?: string;
  link?: { speedGTps?: number; width?: number; maxSpeedGTps?: number; maxWidth?: number };
}

export function parseLinkSpeed(text: string | undefined): number | undefined {
  const match = /^\s*([\d.]+)\s*GT\/s/.exec(text ?? '');
  return match ? Number(match[1]) : undefined;
}

const PCIE_GEN: Record<string, string> = { '2.5': 'Gen 1', '5': 'Gen 2', '8': 'Gen 3', '16': 'Gen 4', '32': 'Gen 5' };
const describeLink = (speed: number, width: number) => `${formatNumber(speed)} GT/s (${PCIE_GEN[String(speed)] ?? 'PCIe'}) x${width}`;

export function evaluateNvme(controllers: readonly NvmeControllerFacts[], t: { nvmeRequired: boolean; minPcieGTps: number; minPcieLinkWidth: number }): QaCheckOutcome[] {
  const drive = controllers.find((c) => c.transport === undefined || c.transport === 'pcie');
  if (!drive) {
    if (!t.nvmeRequired) return [skipped('nvme-present', 'The profile has no NVMe drive.'), skipped('nvme-pcie-link', 'No NVMe drive to check the link of.')];
    return [
      failed('nvme-present', 'No NVMe drive found: check that the drive is seated and the M.2 adapter is connected.', { expected: true }),
      skipped('nvme-pcie-link', 'No NVMe drive to check the link of.'),
    ];
  }
  const present: QaCheckOutcome = {
    check: 'nvme-present',
    verdict: 'pass',
    measured: drive.model ?? drive.name,
    unit: '',
    threshold: { expected: true },
    reason: `NVMe drive ${drive.name} found${drive.model ? `: ${drive.model}` : ''}${drive.serial ? ` (serial ${drive.serial})` : ''}.`,
  };
  if (t.minPcieGTps === 0) return [present, skipped('nvme-pcie-link', 'The profile sets no PCIe link speed (a virtual link).')];
  const speed = drive.link?.speedGTps;
  const width = drive.link?.width;
  if (speed === undefined || width === undefined) return [present, failed('nvme-pcie-link', `The PCIe link of ${drive.name} reports no speed or width.`, { min: t.minPcieGTps })];
  const wanted = describeLink(t.minPcieGTps, t.minPcieLinkWidth);
  const ok = speed >= t.minPcieGTps && width >= t.minPcieLinkWidth;
  return [
    present,
    {
      check: 'nvme-pcie-link',
      verdict: ok ? 'pass' : 'fail',
      measured: speed,
      unit: 'GT/s',
      threshold: { min: t.minPcieGTps },
      reason: ok
        ? `The drive's PCIe link runs at ${describeLink(speed, width)}, at least ${wanted} needed.`
        : `The drive's PCIe link runs at ${describeLink(speed, width)}, slower than the ${wanted} needed: reseat the drive and the adapter's cable.`,
    },
  ];
}

export async function readNvmeControllers(sysDir: string): Promise<NvmeControllerFacts[]> {
  const dir = join(sysDir, 'class/nvme');
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^nvme\d+$/.test(n)).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)));
  return Promise.all(
    names.map(async (name) => {
      const read = async (...parts: string[]) => (await readFile(join(dir, name, ...parts), 'utf8').catch(() => undefined))?.trim() || undefined;
      const number = (text: string | undefined) => (text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined);
      return {
        name,
        model: await read('model'),
        serial: await read('serial'),
        transport: await read('transport'),
        link: {
          speedGTps: parseLinkSpeed(await read('device', 'current_link_speed')),
          width: number(await read('device', 'current_link_width')),
          maxSpeedGTps: parseLinkSpeed(await read('device', 'max_link_speed')),
          maxWidth: number(await read('device', 'max_link_width')),
        },
      };
    }),
  );
}
