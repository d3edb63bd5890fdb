import { readdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckResult, HealthCheck, Metric } from './check.ts';

/**
 * The Raspberry Pi 5's bootloader, which lives in the board's EEPROM: the image never
 * writes it, so the box says which one it has, where it started from and in which order it
 * tries its drives, and whether that is what this image needs. Everything is read from
 * what the firmware hands the kernel, so it works with Debian's kernel (no /dev/vcio):
 *
 * - `/chosen/bootloader/` in the device tree (Raspberry Pi's "Firmware parameters"
 *   documentation): `version` (the bootloader's git version, a string), `build-timestamp`
 *   (its UTC build time), `boot-mode` (the BOOT_ORDER mode this boot was loaded with),
 *   `partition` and `tryboot`; numbers are big-endian 32-bit cells;
 * - the EEPROM's configuration file, which the firmware copies into memory and exposes as
 *   an NVMEM device (the `blconfig` alias; the kernel's nvmem-rmem driver): its
 *   `BOOT_ORDER=` line.
 */

export const BOOTLOADER_CHECK = 'bootloader';

/** BOOT_ORDER's modes (Raspberry Pi documentation, "BOOT_ORDER"); boot-mode uses the same numbers. */
export const BOOT_MODES: Readonly<Record<number, string>> = {
  0x0: 'SD card detect',
  0x1: 'SD card',
  0x2: 'network',
  0x3: 'RPIBOOT',
  0x4: 'USB mass storage',
  0x5: 'BCM-USB mass storage',
  0x6: 'NVMe',
  0x7: 'HTTP',
  0xe: 'stop',
  0xf: 'restart',
};

export interface BootloaderFacts {
  version?: string;
  /** The bootloader's build time, epoch seconds. */
  builtAt?: number;
  /** The mode this boot was loaded with (BOOT_MODES). */
  bootMode?: number;
  /** The partition the firmware started. */
  partition?: number;
  /** Whether this boot was a tryboot. */
  tryboot?: boolean;
  /** BOOT_ORDER from the EEPROM's configuration, when the kernel exposes its copy. */
  bootOrder?: string;
}

/** What the image needs of the bootloader (the hardware profile's `firmware.eeprom`). */
export interface BootloaderRequirements {
  /** The oldest build date (YYYY-MM-DD) this image is made for. */
  minimumBootloaderDate: string;
  /** The BOOT_ORDER the profile asks the factory to set; its first mode is the one that matters. */
  bootOrder: string;
}

/** BOOT_ORDER's modes in the order tried: the nibbles from the right, up to the first `stop`/`restart`. */
export function bootOrderModes(bootOrder: string): number[] {
  const digits = /^0x([0-9a-f]+)$/i.exec(bootOrder.trim())?.[1];
  if (!digits) return [];
  const modes: number[] = [];
  for (const nibble of [...digits].reverse()) {
    const mode = Number.parseInt(nibble, 16);
    modes.push(mode);
    if (mode === 0xe || mode === 0xf) break;
  }
  return modes;
}

const modeName = (mode: number) => BOOT_MODES[mode] ?? `mode 0x${mode.toString(16)}`;
const date = (epochSeconds: number) => new Date(epochSeconds * 1000).toISOString().slice(0, 10);

/** Judges the facts against what the image needs (pure). No facts: not a Raspberry Pi, no result. */
export function evaluateBootloader(facts: BootloaderFacts | undefined, needs: BootloaderRequirements | undefined): CheckResult[] {
  if (!facts || (facts.version === undefined && facts.builtAt === undefined)) return [];
  const metrics: Metric[] = [];
  if (facts.builtAt !== undefined) {
    metrics.push({ name: 'memu_bootloader_build_timestamp_seconds', help: "The Raspberry Pi bootloader's (EEPROM) build time.", type: 'gauge', labels: { version: facts.version ?? 'unknown' }, value: facts.builtAt });
  }
  const said = [
    `The bootloader is from ${facts.builtAt !== undefined ? date(facts.builtAt) : 'an unknown date'}${facts.version ? ` (${facts.version.slice(0, 8)})` : ''}`,
    facts.bootMode !== undefined ? `; this start came from ${modeName(facts.bootMode)}${facts.tryboot ? ' (a trial start)' : ''}` : '',
    facts.bootOrder !== undefined ? `; it tries ${bootOrderModes(facts.bootOrder).map(modeName).join(', then ')}` : '',
    '.',
  ].join('');
  if (needs && facts.builtAt !== undefined && date(facts.builtAt) < needs.minimumBootloaderDate) {
    return [
      {
        check: BOOTLOADER_CHECK,
        status: 'degraded',
        reason: `${said} This Memu is made for a bootloader from ${needs.minimumBootloaderDate} or newer: an older one may fail to start a new system version from the NVMe drive.`,
        action: "Update the bootloader: write Raspberry Pi Imager's \"Bootloader (Pi 5 family) → NVMe/USB Boot\" image to an SD card, start the box once with it, then remove the card.",
        metrics,
      },
    ];
  }
  const wantedFirst = needs ? bootOrderModes(needs.bootOrder)[0] : undefined;
  const actualFirst = facts.bootOrder !== undefined ? bootOrderModes(facts.bootOrder)[0] : undefined;
  if (wantedFirst !== undefined && actualFirst !== undefined && actualFirst !== wantedFirst) {
    return [
      {
        check: BOOTLOADER_CHECK,
        status: 'degraded',
        reason: `${said} Memu expects it to try ${modeName(wantedFirst)} first: a drive or card left plugged in could start instead of Memu.`,
        action: `Set the boot order to ${needs!.bootOrder} (${bootOrderModes(needs!.bootOrder).map(modeName).join(', ')}) with Raspberry Pi Imager's bootloader image, or remove other drives and cards.`,
        metrics,
      },
    ];
  }
  return [{ check: BOOTLOADER_CHECK, status: 'ok', reason: said, metrics }];
}

// ---- reading the device ----

async function readCell(path: string): Promise<number | undefined> {
  const bytes = await readFile(path).catch(() => undefined);
  return bytes && bytes.length >= 4 ? bytes.readUInt32BE(0) : undefined;
}

async function readDtString(path: string): Promise<string | undefined> {
  const text = await readFile(path, 'latin1').catch(() => undefined);
  const value = text?.replace(/\0+$/, '').trim();
  return value || undefined;
}

/** `BOOT_ORDER=0xf416` in the EEPROM's configuration text (NUL-padded); the last one wins, as in the bootloader. */
export function parseBootOrder(configText: string): string | undefined {
  let found: string | undefined;
  for (const line of configText.replace(/\0/g, '').split('\n')) {
    const m = /^\s*BOOT_ORDER\s*=\s*(0x[0-9a-f]+)\s*$/i.exec(line);
    if (m) found = m[1]!.toLowerCase();
  }
  return found;
}

/**
 * The NVMEM device whose device-tree node the `blconfig` alias names: its `of_node` link
 * resolves to that node under /sys/firmware/devicetree/base.
 */
async function readEepromConfig(sysDir: string): Promise<string | undefined> {
  const dtBase = join(sysDir, 'firmware/devicetree/base');
  const node = await readDtString(join(dtBase, 'aliases/blconfig'));
  if (!node) return undefined;
  const wanted = await realpath(join(dtBase, node)).catch(() => undefined);
  if (!wanted) return undefined;
  const devices = join(sysDir, 'bus/nvmem/devices');
  for (const name of await readdir(devices).catch(() => [] as string[])) {
    const ofNode = await realpath(join(devices, name, 'of_node')).catch(() => undefined);
    if (ofNode === wanted) return readFile(join(devices, name, 'nvmem'), 'latin1').catch(() => undefined);
  }
  return undefined;
}

/** The bootloader's facts; undefined when the firmware left none (not a Raspberry Pi). */
export async function readBootloaderFacts(sysDir = '/sys'): Promise<BootloaderFacts | undefined> {
  const dir = join(sysDir, 'firmware/devicetree/base/chosen/bootloader');
  if ((await readdir(dir).catch(() => undefined)) === undefined) return undefined;
  const [version, builtAt, bootMode, partition, tryboot, config] = await Promise.all([
    readDtString(join(dir, 'version')),
    readCell(join(dir, 'build-timestamp')),
    readCell(join(dir, 'boot-mode')),
    readCell(join(dir, 'partition')),
    readCell(join(dir, 'tryboot')),
    readEepromConfig(sysDir),
  ]);
  const facts: BootloaderFacts = {};
  if (version !== undefined) facts.version = version;
  if (builtAt !== undefined && builtAt > 0) facts.builtAt = builtAt;
  if (bootMode !== undefined) facts.bootMode = bootMode;
  if (partition !== undefined) facts.partition = partition;
  if (tryboot !== undefined) facts.tryboot = tryboot === 1;
  const bootOrder = config === undefined ? undefined : parseBootOrder(config);
  if (bootOrder !== undefined) facts.bootOrder = bootOrder;
  return facts;
}

export interface BootloaderCheckOptions {
  sysDir?: string;
  /** What the image needs; undefined when its profile names nothing (not a Pi image). */
  requirements: () => Promise<BootloaderRequirements | undefined>;
  intervalMs?: number;
}

/** Once a day: the bootloader changes only when someone updates the EEPROM, which takes a restart. */
export function createBootloaderCheck(opts: BootloaderCheckOptions): HealthCheck {
  return {
    name: BOOTLOADER_CHECK,
    intervalMs: opts.intervalMs ?? 24 * 3600_000,
    async run() {
      const facts = await readBootloaderFacts(opts.sysDir);
      return facts ? evaluateBootloader(facts, await opts.requirements()) : [];
    },
  };
}
