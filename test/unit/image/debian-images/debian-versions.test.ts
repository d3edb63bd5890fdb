import { describe, expect, it } from 'vitest';
import { compareDebianVersions, parseRelations, satisfies } from '../../../../image/debian-images/debian-versions.ts';

describe("Debian's version order (as dpkg --compare-versions)", () => {
  const sign = (a: string, b: string) => Math.sign(compareDebianVersions(a, b));
  it.each([
    ['1.0', '1.0', 0],
    ['1.0', '1.1', -1],
    ['1.10', '1.9', 1],
    ['1.0~rc1', '1.0', -1],
    ['1.0~rc1', '1.0~rc2', -1],
    ['1.0', '1.0+b1', -1],
    ['1:0.1', '2.0', 1],
    ['2.41-12+deb13u5', '2.41-12+deb13u10', -1],
    ['1.26.3-3+deb13u10', '1.26.3-3+deb13u10.1~', -1],
    ['1.3.dfsg+really1.3.1-1', '1.3.dfsg-1', 1],
    ['3.0.0', '3.5.9-1~deb13u1', -1],
    ['1.0-1', '1.0', 1],
    ['001.0', '1.0', 0],
    ['1.0a', '1.0', 1],
    ['1.0a', '1.0+', -1],
  ])('%s vs %s: %i', (a, b, expected) => {
    expect(sign(a, b)).toBe(expected);
    expect(sign(b, a)).toBe(-expected || 0);
  });
});

describe('package relations', () => {
  it('reads alternatives, version constraints and architecture qualifiers', () => {
    expect(parseRelations('libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, python3:any,  zlib1g (>=1:1.1.4)')).toEqual([
      [{ name: 'libc6', constraint: { relation: '>=', version: '2.34' } }],
      [{ name: 'debconf', constraint: { relation: '>=', version: '0.5' } }, { name: 'debconf-2.0' }],
      [{ name: 'python3' }],
      [{ name: 'zlib1g', constraint: { relation: '>=', version: '1:1.1.4' } }],
    ]);
    expect(parseRelations(undefined)).toEqual([]);
    expect(parseRelations('  ')).toEqual([]);
  });

  it('reads the obsolete < and > as <= and >=', () => {
    expect(parseRelations('aa (< 2), bb (> 1)')).toEqual([[{ name: 'aa', constraint: { relation: '<=', version: '2' } }], [{ name: 'bb', constraint: { relation: '>=', version: '1' } }]]);
  });

  it('refuses what it cannot read rather than guessing', () => {
    expect(() => parseRelations('libc6 (~ 2)')).toThrow(/libc6 \(~ 2\)/);
  });

  it('checks each relation', () => {
    expect(satisfies('2.41-12', { relation: '>=', version: '2.34' })).toBe(true);
    expect(satisfies('2.30', { relation: '>=', version: '2.34' })).toBe(false);
    expect(satisfies('1.26.3-3+deb13u10', { relation: '<<', version: '1.26.3-3+deb13u10.1~' })).toBe(true);
    expect(satisfies('1.0', { relation: '=', version: '1.0' })).toBe(true);
    expect(satisfies('1.0', { relation: '>>', version: '1.0' })).toBe(false);
    expect(satisfies('1.0', { relation: '<=', version: '1.0' })).toBe(true);
    expect(satisfies('9', undefined)).toBe(true);
  });
});
