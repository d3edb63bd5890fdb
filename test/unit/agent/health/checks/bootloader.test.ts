import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootOrderModes, createBootloaderCheck, evaluateBootloader, parseBootOrder, readBootloaderFacts, type BootloaderFacts } from '../../../../../agent/health/checks/bootloader.ts';
import { loadProfile } from '../../../../../hardware/index.ts';
import { tempDir } from '../../../../helpers/temp-dir.ts';

/** 2025-09-10 12:00 UTC and 2024-09-23 12:00 UTC, as the bootloader's build-timestamp cells hold them. */
const SEPT_2025 = Date.UTC(2025, 8, 10, 12) / 1000;
const SEPT_2024 = Date.UTC(2024, 8, 23, 12) / 1000;
const PI5 = (() => {
  const firmware = loadProfile('pi5').firmware;
  if (firmware.kind !== 'raspberrypi') throw new Error('pi5 is a Raspberry Pi profile');
  return firmware.eeprom;
})();

const cell = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/**
 * A /sys as a Pi 5's firmware and Debian's kernel leave it (recorded layout, values made
 * up): the /chosen/bootloader properties, the `blconfig` alias and the NVMEM device
 * holding the EEPROM configuration's copy, whose of_node links to the aliased node.
 */
async function piSys(o: { builtAt?: number; bootMode?: number; config?: string; tryboot?: number } = {}): Promise<string> {
  const sys = await tempDir('memu-bootloader-sys-');
  const dt = join(sys, 'firmware/devicetree/base');
  const chosen = join(dt, 'chosen/bootloader');
  await mkdir(chosen, { recursive: true });
  await writeFile(join(chosen, 'version'), 'a5e1d95f9fe7cd8bd9c5a13cd5b9f0a3f9c1e2b4\0');
  await writeFile(join(chosen, 'build-timestamp'), cell(o.builtAt ?? SEPT_2025));
  await writeFile(join(chosen, 'boot-mode'), cell(o.bootMode ?? 6));
  await writeFile(join(chosen, 'partition'), cell(2));
  await writeFile(join(chosen, 'tryboot'), cell(o.tryboot ?? 0));
  if (o.config !== undefined) {
    const node = join(dt, 'reserved-memory/nvram@0');
    await mkdir(node, { recursive: true });
    await mkdir(join(dt, 'aliases'), { recursive: true });
    await writeFile(join(dt, 'aliases/blconfig'), '/reserved-memory/nvram@0\0');
    const device = join(sys, 'bus/nvmem/devices/rmem0');
    await mkdir(device, { recursive: true });
    await symlink(node, join(device, 'of_node'));
    // An unrelated NVMEM device first: only the aliased one is the configuration.
    await mkdir(join(sys, 'bus/nvmem/devices/rmem1'), { recursive: true });
    await writeFile(join(sys, 'bus/nvmem/devices/rmem1/nvmem'), 'BOOT_ORDER=0xf111\n');
    await writeFile(join(device, 'nvmem'), `${o.config}\0\0\0\0`);
  }
  return sys;
}

const EEPROM_CONFIG = ['[all]', 'BOOT_UART=1', 'POWER_OFF_ON_HALT=0', 'BOOT_ORDER=0xf416', 'PCIE_PROBE=1', ''].join('\n');

describe('bootOrderModes and parseBootOrder', () => {
  it('read BOOT_ORDER from the right, stopping at restart', () => {
    expect(bootOrderModes('0xf416')).toEqual([6, 1, 4, 0xf]);
    expect(bootOrderModes('0xf41')).toEqual([1, 4, 0xf]);
    expect(bootOrderModes('0x1f6')).toEqual([6, 0xf]);
    expect(bootOrderModes('nonsense')).toEqual([]);
  });

  it('takes the last BOOT_ORDER line of the configuration, ignoring the padding', () => {
    expect(parseBootOrder(`${EEPROM_CONFIG}\0\0`)).toBe('0xf416');
    expect(parseBootOrder('BOOT_ORDER=0xf41\n[gpio8=0]\nBOOT_ORDER=0xF416\n')).toBe('0xf416');
    expect(parseBootOrder('BOOT_UART=1\n')).toBeUndefined();
  });
});

describe('evaluateBootloader', () => {
  const facts = (f: Partial<BootloaderFacts> = {}): BootloaderFacts => ({ version: 'a5e1d95f9fe7', builtAt: SEPT_2025, bootMode: 6, partition: 2, tryboot: false, bootOrder: '0xf416', ...f });

  it('says which bootloader, where this start came from and the order it tries, with its build time as a metric', () => {
    expect(evaluateBootloader(facts(), PI5)).toEqual([
      {
        check: 'bootloader',
        status: 'ok',
        reason: 'The bootloader is from 2025-09-10 (a5e1d95f); this start came from NVMe; it tries NVMe, then SD card, then USB mass storage, then restart.',
        metrics: [{ name: 'memu_bootloader_build_timestamp_seconds', help: "The Raspberry Pi bootloader's (EEPROM) build time.", type: 'gauge', labels: { version: 'a5e1d95f9fe7' }, value: SEPT_2025 }],
      },
    ]);
  });

  it('is degraded, saying how to update it, when the bootloader is older than the image needs', () => {
    const [r] = evaluateBootloader(facts({ builtAt: SEPT_2024 }), PI5);
    expect(r).toMatchObject({ status: 'degraded' });
    expect(r!.reason).toContain('from 2024-09-23');
    expect(r!.reason).toContain(`made for a bootloader from ${PI5.minimumBootloaderDate} or newer`);
    expect(r!.action).toMatch(/Raspberry Pi Imager/);
  });

  it('is degraded when another drive is tried before the one the image expects first', () => {
    const [r] = evaluateBootloader(facts({ bootOrder: '0xf461' }), PI5);
    expect(r).toMatchObject({ status: 'degraded' });
    expect(r!.reason).toContain('it tries SD card, then NVMe, then USB mass storage, then restart');
    expect(r!.reason).toContain('expects it to try NVMe first');
    expect(r!.action).toContain(PI5.bootOrder);
  });

  it('reports without judging when the boot order cannot be read or nothing is required, and says nothing off a Pi', () => {
    expect(evaluateBootloader(facts({ bootOrder: undefined }), PI5)[0]!.status).toBe('ok');
    expect(evaluateBootloader(facts({ builtAt: SEPT_2024, bootOrder: '0xf461' }), undefined)[0]!.status).toBe('ok');
    expect(evaluateBootloader(facts({ tryboot: true }), PI5)[0]!.reason).toContain('this start came from NVMe (a trial start)');
    expect(evaluateBootloader(undefined, PI5)).toEqual([]);
  });
});

describe('readBootloaderFacts', () => {
  it('reads the device tree and the EEPROM configuration the kernel exposes as NVMEM', async () => {
    expect(await readBootloaderFacts(await piSys({ config: EEPROM_CONFIG, tryboot: 1 }))).toEqual({
      version: 'a5e1d95f9fe7cd8bd9c5a13cd5b9f0a3f9c1e2b4',
      builtAt: SEPT_2025,
      bootMode: 6,
      partition: 2,
      tryboot: true,
      bootOrder: '0xf416',
    });
  });

  it('leaves the boot order out when the kernel has no copy of the configuration', async () => {
    const facts = await readBootloaderFacts(await piSys());
    expect(facts).toMatchObject({ builtAt: SEPT_2025, bootMode: 6 });
    expect(facts).not.toHaveProperty('bootOrder');
  });

  it('finds nothing on a board without the firmware node (a PC, a VM)', async () => {
    expect(await readBootloaderFacts(await tempDir('memu-bootloader-pc-'))).toBeUndefined();
  });
});

describe('createBootloaderCheck', () => {
  it('runs once a day and judges against the requirements it is given', async () => {
    const check = createBootloaderCheck({ sysDir: await piSys({ builtAt: SEPT_2024, config: EEPROM_CONFIG }), requirements: async () => PI5 });
    expect(check.intervalMs).toBe(24 * 3600_000);
    expect((await check.run()).map((r) => [r.check, r.status])).toEqual([['bootloader', 'degraded']]);
    const pc = createBootloaderCheck({ sysDir: await tempDir('memu-bootloader-pc-'), requirements: async () => undefined });
    expect(await pc.run()).toEqual([]);
  });
});
