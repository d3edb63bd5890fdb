import { describe, expect, it } from 'vitest';
import { bcp47Locale, familyFormats, formatBytes, formatDuration, formatPercent } from '../../../../agent/dashboard/format.ts';

const AT = Date.parse('2026-03-01T23:30:00Z');

describe("the family's formats", () => {
  it('turns the stored POSIX locale into a BCP 47 tag, and refuses what is none', () => {
    expect(bcp47Locale('en_GB.UTF-8')).toBe('en-GB');
    expect(bcp47Locale('de_DE')).toBe('de-DE');
    expect(bcp47Locale('sr_RS@latin')).toBe('sr-RS');
    expect(bcp47Locale('ar-EG')).toBe('ar-EG');
    expect(bcp47Locale('not a locale!')).toBeUndefined();
    expect(bcp47Locale(undefined)).toBeUndefined();
  });

  it("writes times in the family's locale and time zone", () => {
    const fmt = familyFormats({ locale: 'de_DE.UTF-8', timezone: 'Asia/Tokyo' });
    expect(fmt.time(AT)).toBe('02.03.2026, 08:30:00');
    expect(familyFormats({ locale: 'en_GB.UTF-8', timezone: 'Europe/London' }).time(AT)).toBe('1 Mar 2026, 23:30:00');
  });

  it('falls back to en-GB and UTC when nothing, or nothing Intl knows, is stored', () => {
    expect(familyFormats(undefined)).toMatchObject({ locale: 'en-GB', timeZone: 'UTC' });
    const odd = familyFormats({ locale: '??', timezone: 'Mars/Olympus_Mons' });
    expect(odd).toMatchObject({ locale: 'en-GB', timeZone: 'UTC' });
    expect(odd.time(AT)).toBe('1 Mar 2026, 23:30:00');
  });

  it('sizes in decimal units, one decimal below ten', () => {
    expect(formatBytes(0)).toBe('0 byte');
    expect(formatBytes(999)).toBe('999 byte');
    expect(formatBytes(1_234_567_890)).toBe('1.2 GB');
    expect(formatBytes(81_000_000_000)).toBe('81 GB');
    expect(formatBytes(2_500_000_000_000, 'de-DE')).toBe('2,5 TB');
  });

  it('durations in the two largest units', () => {
    expect(formatDuration(273_600)).toBe('3 days 4 hours');
    expect(formatDuration(86_400 + 59)).toBe('1 day');
    expect(formatDuration(3_661)).toBe('1 hour 1 minute');
    expect(formatDuration(42)).toBe('42 seconds');
    expect(formatDuration(0)).toBe('0 seconds');
  });

  it('percentages in the locale', () => {
    expect(formatPercent(0.123)).toBe('12%');
    expect(formatPercent(0.7, 'de-DE')).toBe('70\u00a0%'); // a no-break space
  });
});
