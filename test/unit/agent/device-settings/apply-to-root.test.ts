import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { writeWifi } from '../../../../agent/device-settings/apply-to-root.ts';

/** A fresh directory, removed when the test ends. */
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-root-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('Wi-Fi for systemd-networkd and wpa_supplicant', () => {
  it('writes an open network without a key, and any SSID safely as hex', async () => {
    const root = await tempDir();
    await writeWifi(root, 'wlan0', { ssid: 'Café "quoted"\n}', country: 'DE' });
    const conf = await readFile(join(root, 'etc/wpa_supplicant/wpa_supplicant-wlan0.conf'), 'utf8');
    expect(conf).toContain('key_mgmt=NONE');
    expect(conf).not.toContain('psk=');
    expect(conf).toContain(`ssid=${Buffer.from('Café "quoted"\n}').toString('hex')}\n`);
    expect(conf.match(/}/g)).toHaveLength(1);
  });
});
