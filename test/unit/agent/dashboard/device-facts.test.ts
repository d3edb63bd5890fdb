import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDeviceFacts, parseModel, parseUptime, warmestZone } from '../../../../agent/dashboard/device-facts.ts';
import { tempDir } from '../../../helpers/temp-dir.ts';

async function tree(files: Record<string, string>): Promise<string> {
  const root = await tempDir('memu-device-facts-');
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

describe('device facts', () => {
  it('reads the model without its NUL, and ignores firmware padding', () => {
    expect(parseModel('Raspberry Pi 5 Model B Rev 1.0\0')).toBe('Raspberry Pi 5 Model B Rev 1.0');
    expect(parseModel('NUC13ANHi5\n')).toBe('NUC13ANHi5');
    expect(parseModel('To be filled by O.E.M.\n')).toBeUndefined();
    expect(parseModel('Default string')).toBeUndefined();
    expect(parseModel(undefined)).toBeUndefined();
  });

  it('reads the uptime in whole seconds', () => {
    expect(parseUptime('273600.51 1000000.00\n')).toBe(273600);
    expect(parseUptime('garbage')).toBeUndefined();
    expect(parseUptime(undefined)).toBeUndefined();
  });

  it('shows the warmest plausible thermal zone', () => {
    expect(warmestZone([{ zone: 'acpitz', temp: '27800\n' }, { zone: 'x86_pkg_temp', temp: '61049\n' }, { zone: 'broken', temp: '-273000' }])).toEqual({ celsius: 61, zone: 'x86_pkg_temp' });
    expect(warmestZone([{ zone: 'cpu-thermal', temp: '52350' }])).toEqual({ celsius: 52.4, zone: 'cpu-thermal' });
    expect(warmestZone([{ zone: 'bogus', temp: '255000' }, { zone: 'absent' }])).toBeUndefined();
  });

  it('prefers the device tree, then DMI (vendor and product), and reads everything else from /proc and /sys', async () => {
    const pi = await tree({
      'sys/firmware/devicetree/base/model': 'Raspberry Pi 5 Model B Rev 1.0\0',
      'sys/class/dmi/id/product_name': 'ignored\n',
      'sys/class/thermal/thermal_zone0/type': 'cpu-thermal\n',
      'sys/class/thermal/thermal_zone0/temp': '48000\n',
      'sys/class/thermal/cooling_device0/type': 'fan\n',
      'proc/uptime': '90.2 100.0\n',
    });
    expect(await createDeviceFacts(pi)()).toEqual({ model: 'Raspberry Pi 5 Model B Rev 1.0', uptimeSeconds: 90, temperature: { celsius: 48, zone: 'cpu-thermal' } });

    const nuc = await tree({ 'sys/class/dmi/id/sys_vendor': 'Intel(R) Client Systems\n', 'sys/class/dmi/id/product_name': 'NUC13ANHi5\n' });
    expect(await createDeviceFacts(nuc)()).toEqual({ model: 'Intel(R) Client Systems NUC13ANHi5', uptimeSeconds: undefined, temperature: undefined });
    const vm = await tree({ 'sys/class/dmi/id/sys_vendor': 'QEMU\n', 'sys/class/dmi/id/product_name': 'QEMU Standard PC (Q35 + ICH9, 2009)\n' });
    expect((await createDeviceFacts(vm)()).model).toBe('QEMU Standard PC (Q35 + ICH9, 2009)');
    expect(await createDeviceFacts(await tree({}))()).toEqual({ model: undefined, uptimeSeconds: undefined, temperature: undefined });
  });
});
