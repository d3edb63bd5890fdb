/**
 * Compose variable interpolation on string values: `$$`, `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`, `${VAR?message}`,
 * `${VAR:+alternative}`, `${VAR+alternative}`; defaults may nest (`${A:-${B}}`).
 * Unlike the compose CLI (which warns and substitutes ""), an undefined variable
 * without a default is an error: on an appliance a silently empty password is worse
 * than a stack that does not start.
 */
export class InterpolationError extends Error {
  constructor(
    message: string,
    readonly variable?: string,
  ) {
    super(message);
    this.name = 'InterpolationError';
  }
}

export type Variables = Readonly<Record<string, string | undefined>>;

const NAME = /[A-Za-z_][A-Za-z0-9_]*/y;

export function interpolateString(input: string, variables: Variables): string {
  let out = '';
  let i = 0;
  while (i < input.length) {
    const ch = input[i]!;
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = matchingBrace(input, i + 2);
      if (end < 0) throw new InterpolationError(`unclosed "\${" in "${input}"`);
      out += expandBraced(input.slice(i + 2, end), variables, input);
      i = end + 1;
      continue;
    }
    NAME.lastIndex = i + 1;
    const bare = NAME.exec(input);
    if (bare) {
      out += lookup(bare[0], variables);
      i = NAME.lastIndex;
      continue;
    }
    throw new InterpolationError(`invalid "$" in "${input}"; write "$$" for a literal dollar sign`);
  }
  return out;
}

function matchingBrace(input: string, from: number): number {
  let depth = 1;
  for (let i = from; i < input.length; i++) {
    if (input[i] === '$' && input[i + 1] === '{') {
      depth++;
      i++;
    } else if (input[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function expandBraced(body: string, variables: Variables, whole: string): string {
  NAME.lastIndex = 0;
  const name = NAME.exec(body)?.[0];
  if (!name) throw new InterpolationError(`invalid variable name in "\${${body}}" (in "${whole}")`);
  const rest = body.slice(name.length);
  const value = variables[name];
  if (rest === '') return lookup(name, variables);
  const op = /^(:-|-|:\?|\?|:\+|\+)/.exec(rest)?.[0];
  if (!op) throw new InterpolationError(`unsupported expression "\${${body}}" (in "${whole}")`);
  const arg = () => interpolateString(rest.slice(op.length), variables);
  const unsetOrEmpty = value === undefined || value === '';
  switch (op) {
    case ':-':
      return unsetOrEmpty ? arg() : value;
    case '-':
      return value === undefined ? arg() : value;
    case ':?':
    case '?':
      if (op === ':?' ? unsetOrEmpty : value === undefined) {
        throw new InterpolationError(`variable ${name} is required: ${arg() || 'it is not set'}`, name);
      }
      return value!;
    case ':+':
      return unsetOrEmpty ? '' : arg();
    default:
      return value === undefined ? '' : arg();
  }
}

function lookup(name: string, variables: Variables): string {
  const value = variables[name];
  if (value === undefined) {
    throw new InterpolationError(`variable ${name} is not set and has no default (write \${${name}:-default})`, name);
  }
  return value;
}

/**
 * Interpolates every string value (never a key) of a parsed YAML tree. `onError` gets
 * the dotted path of the value so the caller can name the service and key.
 */
export function interpolateTree(node: unknown, variables: Variables, path: string[] = []): unknown {
  if (typeof node === 'string') {
    try {
      return interpolateString(node, variables);
    } catch (error) {
      if (error instanceof InterpolationError) throw new TreeInterpolationError(error, path);
      throw error;
    }
  }
  if (Array.isArray(node)) return node.map((item, i) => interpolateTree(item, variables, [...path, String(i)]));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = interpolateTree(value, variables, [...path, key]);
    return out;
  }
  return node;
}

export class TreeInterpolationError extends Error {
  constructor(
    override readonly cause: InterpolationError,
    readonly path: string[],
  ) {
    super(cause.message);
    this.name = 'TreeInterpolationError';
  }
}
