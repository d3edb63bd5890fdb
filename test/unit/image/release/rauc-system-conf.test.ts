import { describe, expect, it } from 'vitest';
import { loadProfile } from '../../../../hardware/index.ts';
import { computeLayout } from '../../../../image/disk/layout.ts';
import { raucManifestText, slotImagesFor } from '../../../../image/release/rauc-bundle.ts';
import { raucSystemConf } from '../../../../image/release/rauc-system-conf.ts';

/** The `[section]` → key=value pairs of an ini file, in order. */
function sections(text: string): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) out.set(header[1]!, (current = {}));
    else if (current && line.includes('=')) current[line.slice(0, line.indexOf('='))] = line.slice(line.indexOf('=') + 1);
  }
  return out;
}

describe('RAUC system.conf from the disk layout', () => {
  it('x86-64: two root slots by partition label, named like memu.slot=, with our boot backend and only verity bundles', () => {
    const conf = sections(raucSystemConf(computeLayout(loadProfile('qemu-amd64'), 'test')));
    expect(conf.get('system')).toMatchObject({ compatible: 'memu-os-qemu-amd64', bootloader: 'custom', 'bundle-formats': '-plain', 'data-directory': '/var/lib/memu/rauc' });
    expect(conf.get('keyring')).toEqual({ path: '/etc/rauc/keyring.pem', 'check-purpose': 'codesign' });
    expect(conf.get('handlers')).toEqual({ 'bootloader-custom-backend': '/usr/lib/memu/rauc-boot-backend' });
    expect(conf.get('slot.rootfs.0')).toEqual({ device: '/dev/disk/by-partlabel/memu-root-a', type: 'ext4', bootname: 'a' });
    expect(conf.get('slot.rootfs.1')).toEqual({ device: '/dev/disk/by-partlabel/memu-root-b', type: 'ext4', bootname: 'b' });
    expect([...conf.keys()].filter((k) => k.startsWith('slot.boot'))).toEqual([]);
  });

  it('Pi 5: each boot partition is a child slot of its root, so both are written together', () => {
    const conf = sections(raucSystemConf(computeLayout(loadProfile('pi5'), 'test')));
    expect(conf.get('slot.boot.0')).toEqual({ device: '/dev/disk/by-partlabel/memu-boot-a', type: 'vfat', parent: 'rootfs.0' });
    expect(conf.get('slot.boot.1')).toEqual({ device: '/dev/disk/by-partlabel/memu-boot-b', type: 'vfat', parent: 'rootfs.1' });
  });
});

describe('the bundle manifest', () => {
  it('x86-64 carries the root image only, adaptive; the Pi adds its boot partition image', () => {
    const amd64 = sections(raucManifestText({ profile: 'qemu-amd64', version: '1.2.0', build: 'abc', images: slotImagesFor(computeLayout(loadProfile('qemu-amd64'), 't')) }));
    expect(amd64.get('update')).toMatchObject({ compatible: 'memu-os-qemu-amd64', version: '1.2.0' });
    expect(amd64.get('bundle')).toEqual({ format: 'verity' });
    expect(amd64.get('image.rootfs')).toEqual({ filename: 'rootfs.ext4', adaptive: 'block-hash-index' });
    expect(amd64.has('image.boot')).toBe(false);
    const pi = sections(raucManifestText({ profile: 'pi5', version: '1.2.0', build: 'abc', images: slotImagesFor(computeLayout(loadProfile('pi5'), 't')) }));
    expect(pi.get('image.boot')).toEqual({ filename: 'boot.vfat' });
  });
});
