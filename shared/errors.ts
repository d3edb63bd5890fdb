import type { ZodIssue } from 'zod';

/** The file or directory does not exist (ENOENT; ENOTDIR when a parent is a file). */
export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** `promise`, with "does not exist" turned into undefined: `await readFile(p).catch(ignoreNotFound)`. */
export function ignoreNotFound(err: unknown): undefined {
  if (isNotFound(err)) return undefined;
  throw err;
}

/** `a.b[2].c` for a zod issue path; `(top level)` for the root. */
export function issuePath(path: readonly (string | number)[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/**
 * One line per problem, `path: message`, for every schema the programs validate (hardware
 * profiles, the disk layout, image locks, manifests, stored state). Messages come from the
 * schema, never from the value, so a secret in the wrong field cannot end up in a log.
 * The preseed contract words its problems for families instead (shared/contracts/preseed.ts).
 */
export function formatZodIssues(issues: readonly ZodIssue[]): string[] {
  const seen = new Set<string>();
  const lines: string[] = [];
  for (const issue of issues) {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    for (const path of keys) {
      const message = issue.code === 'unrecognized_keys' ? 'not a known field' : issue.message;
      const line = `${issuePath(path)}: ${message}`;
      if (seen.has(line)) continue;
      seen.add(line);
      lines.push(line);
    }
  }
  return lines;
}

/**
 * `<subject> is invalid: <path>: <message>`, or one problem per indented line when there
 * are several: how every schema failure is worded.
 */
export function describeInvalid(subject: string, issues: readonly ZodIssue[]): string {
  const lines = formatZodIssues(issues);
  if (lines.length <= 1) return `${subject} is invalid: ${lines[0] ?? 'unknown problem'}`;
  return `${subject} is invalid:\n${lines.map((l) => `  - ${l}`).join('\n')}`;
}
