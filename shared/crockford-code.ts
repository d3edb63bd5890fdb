import { randomBytes } from 'node:crypto';

/** Crockford's base32: digits and capitals without I, L, O and U, so a code read off paper is typed right. */
export const CROCKFORD_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A random code of `groups` groups of `groupLength` Crockford symbols joined by dashes
 * (`7KQ2-M9XD-…`), each symbol 5 bits from the kernel's CSPRNG: groups × groupLength × 5
 * bits in all. For codes people read off a label or a printed page and type.
 */
export function randomCrockfordCode(groups: number, groupLength: number): string {
  const symbols = groups * groupLength;
  const bytes = randomBytes(Math.ceil((symbols * 5) / 8));
  let bits = 0n;
  for (const b of bytes) bits = (bits << 8n) | BigInt(b);
  let code = '';
  for (let i = symbols - 1; i >= 0; i--) code += CROCKFORD_ALPHABET[Number((bits >> BigInt(i * 5)) & 31n)];
  return code.match(new RegExp(`.{${groupLength}}`, 'g'))!.join('-');
}
