import { describe, expect, it } from 'vitest';
import { registrationMac } from '../../../../agent/accounts/synapse-admin.ts';

/**
 * Synapse's register_api.md gives its example values and a recipe, not a digest:
 *
 *   printf '%s\0%s\0%s\0%s' "$nonce" "$username" "$password" "$admin" | openssl sha1 -hmac "$secret"
 *
 * The digests below are what that recipe prints (OpenSSL 3.0) for the documented
 * example (nonce thisisanonce, user pepper_roni, password pizza, secret shared_secret).
 */
describe('the shared-secret registration MAC', () => {
  it('is the digest the documented recipe gives for the documented example', () => {
    expect(registrationMac('shared_secret', 'thisisanonce', 'pepper_roni', 'pizza', true)).toBe('48715842ad67d5dc9a9ee938a3bda4fcfae8d7c7');
    expect(registrationMac('shared_secret', 'thisisanonce', 'pepper_roni', 'pizza', false)).toBe('cf2391885316861a8e3871bfdcd223ab3913221d');
  });

  it('covers the text as UTF-8, as the server encodes it', () => {
    // The same recipe in a UTF-8 shell, with non-ASCII password and secret.
    expect(registrationMac('geheimnis-ß', 'thisisanonce', 'anna', 'pässwörd-ü', false)).toBe('178de95abc91060ac87b015cbb33ccf3ab5a5644');
  });

  it('changes with every field it covers', () => {
    const base = registrationMac('s', 'n', 'u', 'p', false);
    for (const other of [
      registrationMac('t', 'n', 'u', 'p', false),
      registrationMac('s', 'm', 'u', 'p', false),
      registrationMac('s', 'n', 'v', 'p', false),
      registrationMac('s', 'n', 'u', 'q', false),
      registrationMac('s', 'n', 'u', 'p', true),
      // the NUL separators keep the fields apart
      registrationMac('s', 'n', 'up', '', false),
    ]) {
      expect(other).not.toBe(base);
    }
  });
});
