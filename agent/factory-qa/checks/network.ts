import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { atLeast, failed, notInstalled, skipped, type QaCheckOutcome, type QaCommandRunner } from './qa-check.ts';

/**
 * Networking: the wired port has a link at its speed (the bench cable goes into a
 * gigabit switch), from /sys/class/net/IF/{carrier,speed}; and where the profile has
 * Wi-Fi, a scan sees at least one network (`iw dev IF scan`, one "BSS xx:xx:…" line per
 * network), which proves the radio and its antenna.
 */
export interface EthernetFacts {
  name: string;
  carrier: boolean;
  /** Mb/s; undefined when the driver reports none (-1, or a virtual NIC). */
  speedMbps?: number;
}

export interface WifiFacts {
  interface?: string;
  networksSeen?: number;
  problem?: string;
}

export function evaluateEthernet(ports: readonly EthernetFacts[], t: { minEthernetMbps: number }): QaCheckOutcome[] {
  if (ports.length === 0) return [failed('ethernet-link', 'No wired network port found.', { min: t.minEthernetMbps })];
  const linked = ports.filter((p) => p.carrier);
  if (linked.length === 0) return [failed('ethernet-link', `No link on ${ports.map((p) => p.name).join(', ')}: check the cable and the switch port.`, { min: t.minEthernetMbps })];
  const best = linked.reduce((a, b) => ((b.speedMbps ?? 0) > (a.speedMbps ?? 0) ? b : a));
  if (t.minEthernetMbps === 0) return [{ check: 'ethernet-link', verdict: 'pass', measured: best.speedMbps ?? null, unit: 'Mb/s', reason: `${best.name} has a link.` }];
  if (best.speedMbps === undefined) return [failed('ethernet-link', `${best.name} has a link but reports no speed.`, { min: t.minEthernetMbps })];
  return [atLeast('ethernet-link', best.speedMbps, t.minEthernetMbps, 'Mb/s', `Link speed of ${best.name}`)];
}

export function evaluateWifi(facts: WifiFacts | undefined, t: { wifiRequired: boolean; minWifiNetworks: number }): QaCheckOutcome[] {
  if (!t.wifiRequired) return [skipped('wifi-scan', 'The profile has no Wi-Fi.')];
  if (!facts?.interface) return [failed('wifi-scan', 'No Wi-Fi interface found: the radio or its firmware is missing.', { min: t.minWifiNetworks })];
  if (facts.networksSeen === undefined) return [failed('wifi-scan', `The Wi-Fi scan on ${facts.interface} failed: ${facts.problem ?? 'no answer'}.`, { min: t.minWifiNetworks })];
  return [atLeast('wifi-scan', facts.networksSeen, t.minWifiNetworks, '', `Wi-Fi networks seen by ${facts.interface}`)];
}

/** Wi-Fi interfaces say DEVTYPE=wlan in their uevent (and have a `wireless` directory). */
async function isWireless(netDir: string, name: string): Promise<boolean> {
  const uevent = await readFile(join(netDir, name, 'uevent'), 'utf8').catch(() => '');
  return /^DEVTYPE=wlan$/m.test(uevent ?? '') || (await readdir(join(netDir, name, 'wireless')).then(() => true, () => false));
}

/** Physical wired ports: a `device` (a bus device behind them) and not Wi-Fi. */
export async function readEthernet(sysDir: string): Promise<EthernetFacts[]> {
  const dir = join(sysDir, 'class/net');
  const ports: EthernetFacts[] = [];
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const has = (sub: string) => readdir(join(dir, name, sub)).then(() => true, () => false);
    if (!(await has('device')) || (await isWireless(dir, name))) continue;
    const read = async (file: string) => (await readFile(join(dir, name, file), 'utf8').catch(() => undefined))?.trim();
    const speed = Number(await read('speed'));
    ports.push({ name, carrier: (await read('carrier')) === '1', speedMbps: Number.isInteger(speed) && speed > 0 ? speed : undefined });
  }
  return ports;
}

export function countScannedNetworks(iwScanOutput: string): number {
  return iwScanOutput.split('\n').filter((line) => /^BSS [0-9a-f]{2}(:[0-9a-f]{2}){5}/.test(line)).length;
}

export async function readWifi(sysDir: string, run: QaCommandRunner): Promise<WifiFacts> {
  const dir = join(sysDir, 'class/net');
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  let wifi: string | undefined;
  for (const name of names) if (!wifi && (await isWireless(dir, name))) wifi = name;
  if (!wifi) return {};
  // A scan needs the interface up, and nothing has configured it during QA; a failure shows in the scan.
  await run('ip', ['link', 'set', wifi, 'up']);
  const r = await run('iw', ['dev', wifi, 'scan']);
  if (r.notInstalled) return { interface: wifi, problem: notInstalled('iw', 'iw') };
  if (r.code !== 0) return { interface: wifi, problem: `iw exited ${r.code}: ${r.stderr.trim()}` };
  return { interface: wifi, networksSeen: countScannedNetworks(r.stdout) };
}
