import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeInvalid, formatZodIssues, ignoreNotFound, isNotFound, issuePath } from '../../../shared/errors.ts';

describe('error helpers', () => {
  it('names every problem by its path, once, and never quotes the value', () => {
    const schema = z.object({ name: z.string(), ports: z.array(z.number()), nested: z.object({ a: z.string() }).strict() }).strict();
    const result = schema.safeParse({ name: 7, ports: [1, 'secret-value'], nested: { a: 'x', b: 1 }, extra: true });
    expect(result.success).toBe(false);
    const lines = formatZodIssues(result.error!.issues);
    expect(lines).toEqual(['name: Expected string, received number', 'ports[1]: Expected number, received string', 'nested.b: not a known field', 'extra: not a known field']);
    expect(lines.join('\n')).not.toContain('secret-value');
    expect(describeInvalid('the thing', result.error!.issues)).toBe(`the thing is invalid:\n${lines.map((l) => `  - ${l}`).join('\n')}`);
  });

  it('words a single problem on one line and the root as "(top level)"', () => {
    const result = z.string().safeParse(3);
    expect(describeInvalid('x.json', result.error!.issues)).toBe('x.json is invalid: (top level): Expected string, received number');
    expect(issuePath(['a', 0, 'b'])).toBe('a[0].b');
  });

  it('treats a missing file or a file where a directory should be as "not found", and nothing else', async () => {
    const enoent = Object.assign(new Error('x'), { code: 'ENOENT' });
    const enotdir = Object.assign(new Error('x'), { code: 'ENOTDIR' });
    const eacces = Object.assign(new Error('x'), { code: 'EACCES' });
    expect([isNotFound(enoent), isNotFound(enotdir), isNotFound(eacces), isNotFound(undefined)]).toEqual([true, true, false, false]);
    await expect(Promise.reject(enoent).catch(ignoreNotFound)).resolves.toBeUndefined();
    await expect(Promise.reject(eacces).catch(ignoreNotFound)).rejects.toBe(eacces);
  });
});
