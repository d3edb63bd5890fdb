import { runCommand } from '../../shared/process/run-command.ts';

/** A Wi-Fi network seen in a scan. */
export interface WifiNetwork {
  ssid: string;
  /** dBm; nearer 0 is stronger. */
  signalDbm: number;
  /** WPA/WPA2/WPA3 (RSN or WPA element seen), else an open network. */
  secured: boolean;
}

/**
 * Parses `iw dev IFACE scan` (iw's human output: one `BSS` block per access point with
 * `signal:`, `SSID:` and, for secured networks, `RSN:`/`WPA:` lines). Hidden networks
 * (empty SSID) are left out; an SSID seen from several access points keeps its strongest.
 * Strongest first.
 */
export function parseIwScan(output: string): WifiNetwork[] {
  const best = new Map<string, WifiNetwork>();
  for (const block of output.split(/^BSS /m).slice(1)) {
    const ssid = /^\s*SSID: ?(.*)$/m.exec(block)?.[1]?.trim() ?? '';
    if (!ssid) continue;
    const signalDbm = Number(/^\s*signal: (-?\d+(?:\.\d+)?) dBm/m.exec(block)?.[1] ?? -100);
    const secured = /^\s*(RSN|WPA):/m.test(block);
    const seen = best.get(ssid);
    if (!seen || signalDbm > seen.signalDbm) best.set(ssid, { ssid, signalDbm, secured });
  }
  return [...best.values()].sort((a, b) => b.signalDbm - a.signalDbm);
}

/** Scans with the device's `iw` (the nuc and pi5 images carry it); brings the interface up first. */
export async function scanWifi(iface: string): Promise<WifiNetwork[]> {
  await runCommand('ip', ['link', 'set', iface, 'up']).catch(() => undefined);
  // coreutils' timeout: a scan that hangs must not hold the page for ever.
  const { stdout } = await runCommand('timeout', ['20', 'iw', 'dev', iface, 'scan']);
  return parseIwScan(stdout);
}
