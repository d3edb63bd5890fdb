import { describe, expect, it } from 'vitest';
import { defaultHostname, wpaPskFromPassphrase } from '../../../../agent/device-settings/device-settings.ts';

describe('Wi-Fi key derivation', () => {
  it('matches the IEEE 802.11i PBKDF2 test vector (what wpa_passphrase prints)', () => {
    expect(wpaPskFromPassphrase('password', 'IEEE')).toBe('f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e');
  });
  it('takes a 64-digit hexadecimal key as the key itself', () => {
    const hex = 'AB'.repeat(32);
    expect(wpaPskFromPassphrase(hex, 'Home')).toBe(hex.toLowerCase());
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
