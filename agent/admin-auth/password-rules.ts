/**
 * What makes an admin password acceptable. The admin's password guards a box that runs
 * as root, reachable from the home network and the tailnet; sign-ins are rate-limited, so
 * what matters is that the password is not one of the first a guesser tries. Rules, each
 * with its own message: at least 12 characters (passphrases of several words welcome), at
 * most 128, not made of one repeated character or a run like "1234…"/"abcd…", not among the
 * commonest passwords, and not containing the username or family name.
 */
export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 128;

// The commonest passwords of public breach lists (NCSC's top list and the like) that are
// 12 characters or longer; shorter ones fail the length rule anyway.
const COMMON = new Set([
  '123456789012', '1234567890123', '12345678901234', 'qwertyuiopasdfgh', 'qwertyuiop123', 'passwordpassword',
  'password1234', 'password12345', 'password123456', 'iloveyou1234', 'welcome12345', 'administrator',
  'administrator1', 'letmein12345', 'changeme1234', 'qwerty123456', 'qwertyuiop12', '1q2w3e4r5t6y',
  '1qaz2wsx3edc', 'zaq12wsxcde3', 'abc123456789', 'football1234', 'baseball1234', 'sunshine1234',
  'princess1234', 'superman1234', 'trustno11234', 'memumemumemu', 'familyfamily', 'correcthorsebatterystaple',
]);

export function passwordProblem(password: string, context: { username?: string; familyName?: string } = {}): string | undefined {
  const chars = [...password];
  if (chars.length < PASSWORD_MIN_LENGTH) return `is shorter than ${PASSWORD_MIN_LENGTH} characters: a few words in a row make a long password that is easy to remember`;
  if (chars.length > PASSWORD_MAX_LENGTH) return `is longer than ${PASSWORD_MAX_LENGTH} characters`;
  const lower = password.toLowerCase();
  if (new Set(chars).size <= 2) return 'repeats one or two characters: choose something harder to guess';
  if (isRun(lower)) return 'is a run of neighbouring keys or digits: choose something harder to guess';
  if (COMMON.has(lower)) return 'is one of the commonest passwords: choose another';
  for (const [what, value] of [
    ['your username', context.username],
    ['the family name', context.familyName],
  ] as const) {
    const v = value?.trim().toLowerCase();
    if (v && v.length >= 3 && lower.includes(v)) return `contains ${what}: choose something others cannot guess from it`;
  }
  return undefined;
}

/** Every step the same distance on a keyboard row or in the alphabet or digits: "123456…", "abcdef…", "qwerty…". */
function isRun(text: string): boolean {
  const rows = ['0123456789', 'abcdefghijklmnopqrstuvwxyz', 'qwertyuiop', 'asdfghjkl', 'zxcvbnm'];
  return rows.some((row) => row.includes(text) || [...row].reverse().join('').includes(text) || row.repeat(4).includes(text));
}
