/**
 * How the checks word numbers in their reasons: sizes in decimal units as disks are sold
 * ("1.2 GB"), shares as "4 %", dates as "4 Dec 2026" (UTC), the same on every box whatever
 * its locale, so the fleet and the factory read the same sentences the family does.
 */

const BYTE_UNITS = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB'] as const;

/** 1 234 567 890 → "1.2 GB"; one decimal below 10 of a unit, none above. */
export function bytes(count: number): string {
  let value = Math.max(0, count);
  let unit = 0;
  while (value >= 1000 && unit < BYTE_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  const digits = value < 10 && unit > 0 ? 1 : 0;
  const shown = Number(value.toFixed(digits));
  return `${shown} ${BYTE_UNITS[unit]}`;
}

/** 0.0412 → "4 %"; a share above zero but under 1 % says "under 1 %" rather than "0 %". */
export function percent(share: number): string {
  const p = share * 100;
  if (p > 0 && p < 1) return 'under 1 %';
  return `${Math.round(p)} %`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** Epoch ms → "4 Dec 2026" (UTC). */
export function day(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
}

/**
 * n, "error" → "1 error" / "9,000 errors". Grouped by hand: the first use of Intl's
 * number formatting maps ~6 MB of ICU's locale data into the agent for good.
 */
export function count(n: number, noun: string, plural = `${noun}s`): string {
  const [whole = '', fraction] = String(n).split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+$)/g, ',');
  return `${fraction === undefined ? grouped : `${grouped}.${fraction}`} ${n === 1 ? noun : plural}`;
}
