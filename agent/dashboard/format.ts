/**
 * How the dashboard words numbers and times for the family: dates and times in the
 * family's locale and time zone (the device settings; en-GB and UTC until they are set),
 * sizes in decimal units as disks are sold, durations in plain words.
 */
export const DEFAULT_LOCALE = 'en-GB';
export const DEFAULT_TIMEZONE = 'UTC';

/** "en_GB.UTF-8", "de_DE", "de-DE" → "de-DE"; undefined when it is not a locale Intl knows. */
export function bcp47Locale(locale: string | undefined): string | undefined {
  if (!locale) return undefined;
  const tag = locale.split(/[.@]/)[0]!.replace(/_/g, '-');
  try {
    return Intl.getCanonicalLocales(tag)[0];
  } catch {
    return undefined;
  }
}

export interface FamilyFormats {
  locale: string;
  timeZone: string;
  /** A moment (epoch ms) as date and time, e.g. "3 Mar 2026, 14:05:09". */
  time(ms: number): string;
  bytes(count: number): string;
}

/** Formatters for the family's settings; a locale or zone Intl does not know falls back to the defaults. */
export function familyFormats(settings: { locale?: string; timezone?: string } | undefined): FamilyFormats {
  const locale = bcp47Locale(settings?.locale) ?? DEFAULT_LOCALE;
  let timeZone = settings?.timezone || DEFAULT_TIMEZONE;
  let dates: Intl.DateTimeFormat;
  try {
    dates = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: 'medium', timeStyle: 'medium' });
  } catch {
    timeZone = DEFAULT_TIMEZONE;
    dates = new Intl.DateTimeFormat(locale, { timeZone, dateStyle: 'medium', timeStyle: 'medium' });
  }
  return { locale, timeZone, time: (ms) => dates.format(ms), bytes: (count) => formatBytes(count, locale) };
}

const UNITS = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte', 'petabyte'] as const;

/** 1 234 567 890 → "1.2 GB" (decimal units, as a drive's label counts them). */
export function formatBytes(count: number, locale = DEFAULT_LOCALE): string {
  let value = Math.max(0, count);
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return new Intl.NumberFormat(locale, { style: 'unit', unit: UNITS[unit], unitDisplay: 'short', maximumFractionDigits: value < 10 && unit > 0 ? 1 : 0 }).format(value);
}

/** 273 600 → "3 days 4 hours"; the two largest units, never "0 minutes" for a running box. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const parts: [number, string][] = [
    [Math.floor(s / 86_400), 'day'],
    [Math.floor((s % 86_400) / 3600), 'hour'],
    [Math.floor((s % 3600) / 60), 'minute'],
    [s % 60, 'second'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return '0 seconds';
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n} ${unit}${n === 1 ? '' : 's'}`)
    .join(' ');
}

/** A share as a whole percentage in the family's locale: 0.123 → "12%" (en-GB), "12 %" (de-DE). */
export function formatPercent(share: number, locale = DEFAULT_LOCALE): string {
  return new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 0 }).format(share);
}
