import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atLeast, failed, type QaCheckOutcome } from './qa-check.ts';

/**
 * Who the unit is: its serial number, the board's model string and its MAC addresses.
 * A Raspberry Pi gives its serial and model in the device tree; a PC in DMI (the serial
 * readable by root only). Placeholder strings that board makers leave in DMI count as none.
 */
export interface IdentityFacts {
  serialNumber?: string;
  boardModel?: string;
  macAddresses: { interface: string; address: string }[];
}

const PLACEHOLDERS = /^(|0+|none|not specified|not applicable|default string|to be filled by o\.e\.m\.|system serial number|system product name)$/i;

export function evaluateIdentity(facts: IdentityFacts, boardModelPattern: string): QaCheckOutcome[] {
  const serial: QaCheckOutcome = facts.serialNumber
    ? { check: 'serial-number', verdict: 'pass', measured: facts.serialNumber, unit: '', reason: `The board's serial number is ${facts.serialNumber}.` }
    : failed('serial-number', 'The board reports no serial number, so the unit cannot be recorded; check the board (DMI or device tree).');
  const pattern = new RegExp(boardModelPattern);
  const model: QaCheckOutcome =
    facts.boardModel === undefined
      ? failed('board-model', 'The board reports no model string.', { expected: boardModelPattern })
      : {
          check: 'board-model',
          verdict: pattern.test(facts.boardModel) ? 'pass' : 'fail',
          measured: facts.boardModel,
          unit: '',
          threshold: { expected: boardModelPattern },
          reason: pattern.test(facts.boardModel) ? `The board is a ${facts.boardModel}.` : `The board is a ${facts.boardModel}, not the board this image is for (${boardModelPattern}).`,
        };
  const macs = atLeast('mac-addresses', facts.macAddresses.length, 1, '', 'Network interfaces with a MAC address');
  return [serial, model, macs];
}

async function readTrimmed(path: string): Promise<string | undefined> {
  // Device-tree strings end in a NUL byte.
  const text = (await readFile(path, 'utf8').catch(() => undefined))?.replace(/\0+$/, '').trim();
  return text === undefined || PLACEHOLDERS.test(text) ? undefined : text;
}

export async function readIdentity(sysDir: string): Promise<IdentityFacts> {
  const dt = join(sysDir, 'firmware/devicetree/base');
  const dmi = join(sysDir, 'class/dmi/id');
  const serialNumber = (await readTrimmed(join(dt, 'serial-number'))) ?? (await readTrimmed(join(dmi, 'product_serial')));
  const vendor = await readTrimmed(join(dmi, 'sys_vendor'));
  const product = await readTrimmed(join(dmi, 'product_name'));
  const boardModel = (await readTrimmed(join(dt, 'model'))) ?? (product ? (vendor && !product.startsWith(vendor) ? `${vendor} ${product}` : product) : undefined);
  return { serialNumber, boardModel, macAddresses: await readMacAddresses(sysDir) };
}

/** The MAC addresses of physical interfaces (those with a `device`): not lo, bridges, veths or Docker's. */
export async function readMacAddresses(sysDir: string): Promise<IdentityFacts['macAddresses']> {
  const dir = join(sysDir, 'class/net');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  const found: IdentityFacts['macAddresses'] = [];
  for (const name of names) {
    const physical = await readdir(join(dir, name, 'device')).then(() => true, () => false);
    const address = (await readFile(join(dir, name, 'address'), 'utf8').catch(() => ''))?.trim().toLowerCase();
    if (physical && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(address) && address !== '00:00:00:00:00:00') found.push({ interface: name, address });
  }
  return found;
}
