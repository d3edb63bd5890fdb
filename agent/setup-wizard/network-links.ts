import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A network port of the box as the wizard shows it. */
export interface NetworkLink {
  name: string;
  kind: 'wired' | 'wireless';
  /** Cable in (wired) or associated (wireless). */
  connected: boolean;
}

/**
 * The box's physical network ports from sysfs: interfaces backed by a device (so not
 * loopback, Docker's bridges and veths, or Tailscale's tun), wireless when they have a
 * `wireless` or `phy80211` entry.
 */
export async function networkLinks(sysClassNetDir = '/sys/class/net'): Promise<NetworkLink[]> {
  const exists = (p: string) => access(p).then(() => true, () => false);
  const names = (await readdir(sysClassNetDir).catch(() => [] as string[])).sort();
  const links: NetworkLink[] = [];
  for (const name of names) {
    const dir = join(sysClassNetDir, name);
    if (!(await exists(join(dir, 'device')))) continue;
    const wireless = (await exists(join(dir, 'wireless'))) || (await exists(join(dir, 'phy80211')));
    const operstate = (await readFile(join(dir, 'operstate'), 'utf8').catch(() => 'unknown')).trim();
    links.push({ name, kind: wireless ? 'wireless' : 'wired', connected: operstate === 'up' });
  }
  return links;
}
