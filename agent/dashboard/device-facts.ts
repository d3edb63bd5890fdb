import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseMillidegrees } from '../health/index.ts';

/**
 * What the overview says about the hardware, read from the kernel's files: the model
 * (device tree on a Raspberry Pi, DMI on a PC), the uptime and the temperature where the
 * board has a sensor. `root` is `/` on the device; tests point it at a fake tree.
 */
export interface DeviceFacts {
  model?: string;
  uptimeSeconds?: number;
  /** The warmest thermal zone, in °C, with the kernel's name for it. */
  temperature?: { celsius: number; zone: string };
}

/** The device tree's model ends in a NUL; DMI strings end in a newline; both may be padding ("To be filled by O.E.M."). */
export function parseModel(text: string | undefined): string | undefined {
  const model = text?.replace(/\0/g, '').trim();
  if (!model || /^(to be filled by o\.e\.m\.|default string|system product name|not specified)$/i.test(model)) return undefined;
  return model;
}

/** /proc/uptime: "12345.67 54321.00" → 12345. */
export function parseUptime(text: string | undefined): number | undefined {
  const seconds = Number(text?.trim().split(/\s+/)[0]);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.floor(seconds) : undefined;
}

/** thermal_zone*'s temp files hold millidegrees; the warmest plausible reading is the one worth showing. */
export function warmestZone(zones: readonly { zone: string; temp?: string }[]): DeviceFacts['temperature'] {
  let warmest: DeviceFacts['temperature'];
  for (const { zone, temp } of zones) {
    // Sensors that are absent or broken report nonsense (0, -273000, 255000 …).
    const celsius = parseMillidegrees(temp);
    if (celsius === undefined) continue;
    if (!warmest || celsius > warmest.celsius) warmest = { celsius, zone };
  }
  return warmest;
}

const readText = (path: string) => readFile(path, 'utf8').catch(() => undefined);

export function createDeviceFacts(root = '/'): () => Promise<DeviceFacts> {
  let model: Promise<string | undefined> | undefined;
  const readModel = async () => {
    const tree = parseModel(await readText(join(root, 'sys/firmware/devicetree/base/model')));
    if (tree) return tree;
    const dmi = join(root, 'sys/class/dmi/id');
    const [vendor, product] = await Promise.all([readText(join(dmi, 'sys_vendor')), readText(join(dmi, 'product_name'))]);
    const name = parseModel(product);
    const maker = parseModel(vendor);
    return name && maker && !name.toLowerCase().startsWith(maker.toLowerCase()) ? `${maker} ${name}` : name;
  };
  const readZones = async () => {
    const dir = join(root, 'sys/class/thermal');
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('thermal_zone'));
    return Promise.all(
      names.map(async (n) => ({ zone: (await readText(join(dir, n, 'type')))?.trim() || n, temp: await readText(join(dir, n, 'temp')) })),
    );
  };
  return async () => {
    // The model never changes while the device runs.
    model ??= readModel();
    const [m, uptime, zones] = await Promise.all([model, readText(join(root, 'proc/uptime')), readZones()]);
    return { model: m, uptimeSeconds: parseUptime(uptime), temperature: warmestZone(zones) };
  };
}
