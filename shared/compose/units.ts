/** Compose's value formats: durations (`1m30s`), byte sizes (`512m`), CPU counts. */

const DURATION_UNITS_NS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** `1m30s`, `500ms`, `10s` -> nanoseconds; throws on anything else. */
export function parseDurationNs(value: string | number): number {
  if (typeof value === 'number') {
    throw new Error(`duration ${value} needs a unit, e.g. "${value}s"`);
  }
  const text = value.trim();
  const part = /(\d+(?:\.\d+)?)(ns|us|\u00b5s|ms|s|m|h)/y;
  let total = 0;
  let index = 0;
  if (text === '0') return 0;
  while (index < text.length) {
    part.lastIndex = index;
    const match = part.exec(text);
    if (!match) throw new Error(`"${value}" is not a duration like "10s" or "1m30s"`);
    total += Number(match[1]) * DURATION_UNITS_NS[match[2]!]!;
    index = part.lastIndex;
  }
  if (text.length === 0) throw new Error('empty duration');
  return Math.round(total);
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `512m`, `1g`, `1gb`, `1048576` -> bytes (binary units, as Docker's CLI parses them). */
export function parseByteSize(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$/i.exec(value);
  if (!match) throw new Error(`"${value}" is not a size like "512m" or "2g"`);
  return Math.round(Number(match[1]) * BYTE_UNITS[match[2]!.toLowerCase()]!);
}

/** `0.5`, `"1.5"` -> Docker's NanoCpus. */
export function parseNanoCpus(value: string | number): number {
  const cpus = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(cpus) || cpus <= 0) throw new Error(`"${value}" is not a CPU count like 0.5 or 2`);
  return Math.round(cpus * 1e9);
}
