import { describe, expect, it } from 'vitest';
import { passwordProblem } from '../../../../agent/admin-auth/index.ts';

describe('the admin password rules', () => {
  it.each([
    ['short1!', /shorter than 12 characters/],
    ['aaaaaaaaaaaaaaaa', /repeats one or two characters/],
    ['abababababababab', /repeats one or two characters/],
    ['1234567890123', /run of neighbouring keys or digits/],
    ['qwertyuiopqwer', /run of neighbouring keys or digits/],
    ['password1234', /commonest passwords/],
    ['x'.repeat(129), /longer than 128 characters/],
  ])('refuses %j, saying why', (password, why) => {
    expect(passwordProblem(password)).toMatch(why);
  });

  it('refuses a password that contains the username or the family name, in any case', () => {
    expect(passwordProblem('Okafors rule the world', { familyName: 'okafors' })).toMatch(/contains the family name/);
    expect(passwordProblem('hello adaeze friend', { username: 'adaeze' })).toMatch(/contains your username/);
  });

  it('takes a passphrase of a few words, and one in another script', () => {
    expect(passwordProblem('purple kettles hum at dawn', { username: 'ada', familyName: 'The Okafors' })).toBeUndefined();
    expect(passwordProblem('сова летит над рекой')).toBeUndefined();
  });
});
