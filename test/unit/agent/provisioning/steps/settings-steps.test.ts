import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePreseed } from '../../../../../shared/contracts/preseed.ts';
import { defaultHostname, wpaPskFromPassphrase } from '../../../../../agent/device-settings/device-settings.ts';
import { writeWifi } from '../../../../../agent/device-settings/apply-to-root.ts';
import { createFileOnce, removeStaleTemporaryFiles } from '../../../../../shared/files/durable-files.ts';
import { generateClaimCode } from '../../../../../agent/provisioning/steps/secrets-steps.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'memu-steps-unit-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('generated claim codes', () => {
  it('follow the preseed contract (4 groups of 4 Crockford base32 symbols) and do not repeat', () => {
    const codes = new Set(Array.from({ length: 500 }, generateClaimCode));
    expect(codes.size).toBe(500);
    for (const code of [...codes].slice(0, 50)) {
      expect(code).toMatch(/^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$/);
      expect(parsePreseed(JSON.stringify({ version: 1, claimCode: code }))).toMatchObject({ ok: true });
    }
  });
});

describe('Wi-Fi key derivation', () => {
  it('matches the IEEE 802.11i PBKDF2 test vector (what wpa_passphrase prints)', () => {
    expect(wpaPskFromPassphrase('password', 'IEEE')).toBe('f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e');
  });
  it('takes a 64-digit hexadecimal key as the key itself', () => {
    const hex = 'AB'.repeat(32);
    expect(wpaPskFromPassphrase(hex, 'Home')).toBe(hex.toLowerCase());
  });
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

describe('default hostname', () => {
  it('is memu- plus 4 hex digits, stable for a machine id, and does not expose the id', () => {
    const id = '0123456789abcdef0123456789abcdef';
    expect(defaultHostname(id)).toMatch(/^memu-[0-9a-f]{4}$/);
    expect(defaultHostname(`${id}\n`)).toBe(defaultHostname(id));
    expect(defaultHostname(id)).not.toBe('memu-0123');
    expect(defaultHostname('fedcba9876543210fedcba9876543210')).not.toBe(defaultHostname(id));
    expect(defaultHostname('')).toMatch(/^memu-[0-9a-f]{4}$/);
  });
});

describe('create-once secret files', () => {
  it('never replaces a secret that exists, even when racing another writer', async () => {
    const dir = await tempDir();
    const path = join(dir, 'secrets', 'key');
    const results = await Promise.all(['first', 'second', 'third'].map((c) => createFileOnce(path, c, { mode: 0o600 })));
    const winner = await readFile(path, 'utf8');
    expect(results.filter((r) => r.created)).toHaveLength(1);
    for (const r of results) expect(r.content).toBe(winner);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await createFileOnce(path, 'later', { mode: 0o600 })).toEqual({ content: winner, created: false });
    expect(await readdir(join(dir, 'secrets'))).toEqual(['key']);
  });
});

describe('stale temporary files', () => {
  it('removes only interrupted writes\' temporary names, and only the listed ones in shared dirs', async () => {
    const dir = await tempDir();
    for (const name of ['.hostname.tmp-123-kq2', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp', '.hidden']) await writeFile(join(dir, name), 'x');
    await removeStaleTemporaryFiles(dir, { only: ['hostname'] });
    expect((await readdir(dir)).sort()).toEqual(['.hidden', '.passwd.tmp-9-abc', 'hostname', 'notes.tmp']);
    await removeStaleTemporaryFiles(dir);
    expect((await readdir(dir)).sort()).toEqual(['.hidden', 'hostname', 'notes.tmp']);
    expect(await removeStaleTemporaryFiles(join(dir, 'missing'))).toEqual([]);
  });
});

describe('the preseed FAT partition from the disk layout', () => {
  it('is the lowest-numbered vfat partition, as its real device node', async () => {
    const { preseedFatDevice } = await import('../../../../../agent/provisioning/steps/first-boot-context.ts');
    const { mkdir, symlink } = await import('node:fs/promises');
    const dev = await tempDir();
    await mkdir(join(dev, 'disk/by-partuuid'), { recursive: true });
    await writeFile(join(dev, 'sda1'), '');
    await symlink('../../sda1', join(dev, 'disk/by-partuuid/11111111-1111-4111-8111-111111111111'));
    const part = (number: number, role: string, filesystem: string, partUuid: string) =>
      ({ number, role, label: role, partUuid, typeGuid: 'x', filesystem, fsUuid: 'x', startBytes: 0, sizeBytes: 1 }) as never;
    const layout = {
      format: 'memu-disk-layout/1',
      profile: 'pi5',
      diskGuid: '00000000-0000-4000-8000-000000000000',
      sectorSize: 512,
      imageSizeBytes: 1,
      partitions: [
        part(2, 'boot-a', 'vfat', '22222222-2222-4222-8222-222222222222'),
        part(1, 'bootconfig', 'vfat', '11111111-1111-4111-8111-111111111111'),
        part(4, 'data', 'ext4', '44444444-4444-4444-8444-444444444444'),
      ],
    } as const;
    expect(await preseedFatDevice(layout as never, dev)).toBe(join(dev, 'sda1'));
    expect(await preseedFatDevice({ ...layout, partitions: [layout.partitions[2]] } as never, dev)).toBeUndefined();
  });
});
