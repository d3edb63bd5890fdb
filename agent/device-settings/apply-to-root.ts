import { access, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readTextIfPresent, replaceSymlink, writeFileDurably } from '../../shared/files/durable-files.ts';
import { runCommand } from '../../shared/process/run-command.ts';
import {
  authorizedKeysText,
  readStoredAuthorizedKeys,
  readStoredSettings,
  readStoredWifi,
  type StoredWifi,
} from './device-settings.ts';

/**
 * Writes the stored device settings into a root file system (`/` on the device, a temp
 * dir in tests). Every function is idempotent and rewrites only what differs, so it is
 * cheap to run at every boot (after an A/B update the new slot starts without them).
 */
export interface RootEffects {
  rootDir: string;
  applyHostname?: (name: string) => Promise<void>;
  applyTimezone?: (zone: string) => Promise<void>;
  reloadNetwork?: (wifiInterface: string) => Promise<void>;
  wifiInterface?: string;
  sysClassNetDir?: string;
}

export const WIFI_NETWORK_FILE = 'etc/systemd/network/70-memu-wifi.network';

export async function writeHostname(rootDir: string, name: string): Promise<boolean> {
  return writeIfDifferent(join(rootDir, 'etc/hostname'), `${name}\n`, 0o644);
}

/** /etc/localtime → /usr/share/zoneinfo/ZONE (what timedatectl does) and /etc/timezone (Debian's name file). */
export async function writeTimezone(rootDir: string, zone: string): Promise<boolean> {
  const changed = await replaceSymlink(join(rootDir, 'etc/localtime'), `/usr/share/zoneinfo/${zone}`);
  return (await writeIfDifferent(join(rootDir, 'etc/timezone'), `${zone}\n`, 0o644)) || changed;
}

/** The wireless interface: the given one, else the first with /sys/class/net/X/wireless, else wlan0. */
export async function findWifiInterface(effects: Pick<RootEffects, 'wifiInterface' | 'sysClassNetDir'>): Promise<string> {
  if (effects.wifiInterface) return effects.wifiInterface;
  const dir = effects.sysClassNetDir ?? '/sys/class/net';
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names.sort()) {
    if (await access(join(dir, name, 'wireless')).then(() => true, () => false)) return name;
  }
  return 'wlan0';
}

/**
 * Wi-Fi for systemd-networkd + wpa_supplicant@IF: a `.network` (DHCP on any wlan), the
 * supplicant config (0600; holds the derived WPA key, never the passphrase; the SSID in
 * hex so no character can break the file), and the unit enabled the way
 * `systemctl enable` does it (a symlink), which works without a running systemd.
 */
export async function writeWifi(rootDir: string, wifiInterface: string, wifi: StoredWifi): Promise<boolean> {
  const network = ['# Written by memu-agent from the device settings on the data partition.', '[Match]', 'Type=wlan', '', '[Network]', 'DHCP=yes', 'MulticastDNS=yes', '', '[DHCPv4]', 'UseDomains=yes', ''].join('\n');
  const supplicant = [
    '# Written by memu-agent from the device settings on the data partition; edits are replaced at boot.',
    'ctrl_interface=/run/wpa_supplicant',
    'update_config=0',
    `country=${wifi.country}`,
    'network={',
    `\tssid=${Buffer.from(wifi.ssid, 'utf8').toString('hex')}`,
    '\tscan_ssid=1',
    ...(wifi.psk ? ['\tkey_mgmt=WPA-PSK WPA-PSK-SHA256', `\tpsk=${wifi.psk}`] : ['\tkey_mgmt=NONE']),
    '}',
    '',
  ].join('\n');
  let changed = await writeIfDifferent(join(rootDir, WIFI_NETWORK_FILE), network, 0o644);
  changed = (await writeIfDifferent(join(rootDir, `etc/wpa_supplicant/wpa_supplicant-${wifiInterface}.conf`), supplicant, 0o600)) || changed;
  const wants = join(rootDir, 'etc/systemd/system/multi-user.target.wants', `wpa_supplicant@${wifiInterface}.service`);
  return (await replaceSymlink(wants, '/usr/lib/systemd/system/wpa_supplicant@.service')) || changed;
}

/** root's authorized_keys (the image has no other login user; sshd's default allows key-only root login). */
export async function writeAuthorizedKeys(rootDir: string, keys: readonly string[]): Promise<boolean> {
  const sshDir = join(rootDir, 'root/.ssh');
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  return writeIfDifferent(join(sshDir, 'authorized_keys'), authorizedKeysText(keys), 0o600);
}

/**
 * Re-applies everything stored on the data partition to the running root slot. The
 * provisioning module calls this at every boot (after provisioning has run once) so an A/B update keeps the
 * family's hostname, time zone, Wi-Fi and SSH keys. Returns what changed.
 */
export async function applyStoredDeviceSettings(dataDir: string, effects: RootEffects): Promise<string[]> {
  const changed: string[] = [];
  const settings = await readStoredSettings(dataDir);
  if (settings) {
    if (await applyHostname(effects, settings.hostname)) changed.push('hostname');
    if (await applyTimezone(effects, settings.timezone)) changed.push('timezone');
  }
  const wifi = await readStoredWifi(dataDir);
  if (wifi) {
    const wifiInterface = await findWifiInterface(effects);
    if (await writeWifi(effects.rootDir, wifiInterface, wifi)) {
      changed.push('wifi');
      await effects.reloadNetwork?.(wifiInterface);
    }
  }
  const keys = await readStoredAuthorizedKeys(dataDir);
  if (keys && (await writeAuthorizedKeys(effects.rootDir, keys))) changed.push('sshAuthorizedKeys');
  return changed;
}

/** The injected effect (device: hostnamectl) or, by default, rootDir/etc/hostname. */
export async function applyHostname(effects: RootEffects, name: string): Promise<boolean> {
  if (!effects.applyHostname) return writeHostname(effects.rootDir, name);
  await effects.applyHostname(name);
  return true;
}

/** The injected effect (device: timedatectl) or, by default, the /etc/localtime link and /etc/timezone. */
export async function applyTimezone(effects: RootEffects, zone: string): Promise<boolean> {
  if (!effects.applyTimezone) return writeTimezone(effects.rootDir, zone);
  await effects.applyTimezone(zone);
  return true;
}

async function writeIfDifferent(path: string, content: string, mode: number): Promise<boolean> {
  if ((await readTextIfPresent(path)) === content) return false;
  await writeFileDurably(path, content, mode);
  return true;
}

/** What the device's own tools do when settings change (tests use the file-only defaults of RootEffects). */
export function deviceRootEffects(sysClassNetDir = '/sys/class/net'): RootEffects {
  return {
    rootDir: '/',
    applyHostname: async (name: string) => {
      await writeHostname('/', name);
      await runCommand('hostnamectl', ['set-hostname', name]).catch(() => undefined);
    },
    reloadNetwork: async (iface: string) => {
      await runCommand('systemctl', ['restart', `wpa_supplicant@${iface}.service`]).catch(() => undefined);
      await runCommand('networkctl', ['reload']).catch(() => undefined);
    },
    sysClassNetDir,
  };
}
