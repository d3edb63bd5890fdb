import { describe, expect, it } from 'vitest';
import { immichEmail } from '../../../../agent/accounts/immich-admin.ts';

describe("members' Immich e-mail addresses", () => {
  it('are the username at the device under home.arpa', () => {
    expect(immichEmail('anna', 'memu-hub')).toBe('anna@memu-hub.home.arpa');
    expect(immichEmail('ben.k', 'Memu-7F3A')).toBe('ben.k@memu-7f3a.home.arpa');
  });

  it('use only the first label of a host name given with a domain', () => {
    expect(immichEmail('anna', 'memu-hub.local')).toBe('anna@memu-hub.home.arpa');
  });

  it('refuse a host name that is not a DNS label', () => {
    for (const bad of ['', '-memu', 'memu_hub', 'mémé']) expect(() => immichEmail('anna', bad), bad).toThrow(/not a DNS label/);
  });
});
