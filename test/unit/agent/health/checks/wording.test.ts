import { describe, expect, it } from 'vitest';
import { count } from '../../../../../agent/health/checks/wording.ts';

describe('how the checks word counts', () => {
  it('groups thousands with commas, as the reasons read the same on every box', () => {
    expect(count(1, 'error')).toBe('1 error');
    expect(count(0, 'error')).toBe('0 errors');
    expect(count(999, 'error')).toBe('999 errors');
    expect(count(9000, 'error')).toBe('9,000 errors');
    expect(count(1234567, 'reset', 'resets')).toBe('1,234,567 resets');
    expect(count(-12345, 'degree')).toBe('-12,345 degrees');
    expect(count(12345.5, 'hour')).toBe('12,345.5 hours');
  });
});
