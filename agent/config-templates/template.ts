/**
 * The config template syntax: `{{ path.to.value }}` inserts a value as text,
 * `{{ path.to.value | json }}` inserts it JSON-encoded (a safe string literal in both
 * JSON and YAML files).
 *
 * Deliberately logic-less, with no template engine dependency: every decision (is
 * federation on? which listener resources?) is made in typed TypeScript
 * (stack-values.ts) and reaches the template as a ready value. That keeps templates
 * readable as the config files they produce, and makes the set of inputs a template
 * needs checkable: a reference to a value that does not exist is an error naming the
 * value and the template, never an empty string in a config file.
 */

export type TemplateValue = string | number | boolean;
export interface TemplateContext {
  readonly [key: string]: TemplateValue | TemplateContext;
}

export class TemplateError extends Error {
  constructor(
    message: string,
    readonly template: string,
    /** The value paths that were missing (empty for syntax errors). */
    readonly missing: readonly string[] = [],
  ) {
    super(message);
    this.name = 'TemplateError';
  }
}

const FILTERS: Record<string, (value: TemplateValue) => string> = {
  json: (value) => JSON.stringify(value),
};

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*(?:\|\s*([A-Za-z_]+)\s*)?\}\}/g;

function lookup(context: TemplateContext, path: string): TemplateValue | TemplateContext | undefined {
  let node: TemplateValue | TemplateContext | undefined = context;
  for (const key of path.split('.')) {
    if (node === undefined || node === null || typeof node !== 'object') return undefined;
    node = Object.prototype.hasOwnProperty.call(node, key) ? (node as TemplateContext)[key] : undefined;
  }
  return node;
}

function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/**
 * Renders `text` (the template called `name`, for messages) with `context`. Throws a
 * TemplateError listing every unknown value, unknown filter and malformed `{{ }}`.
 */
export function renderTemplate(name: string, text: string, context: TemplateContext): string {
  const missing: string[] = [];
  const problems: string[] = [];
  const out = text.replace(PLACEHOLDER, (match: string, path: string, filter: string | undefined, offset: number) => {
    const value = lookup(context, path);
    if (value === undefined || value === null) {
      if (!missing.includes(path)) missing.push(path);
      return match;
    }
    if (typeof value === 'object') {
      problems.push(`line ${lineOf(text, offset)}: "${path}" is a group of values, not a value`);
      return match;
    }
    if (filter === undefined) return String(value);
    const apply = FILTERS[filter];
    if (!apply) {
      problems.push(`line ${lineOf(text, offset)}: unknown filter "${filter}" (known: ${Object.keys(FILTERS).join(', ')})`);
      return match;
    }
    return apply(value);
  });
  // Anything still looking like a placeholder was malformed (or reported above).
  const leftover = /\{\{[^}]*\}\}?/g;
  for (const m of text.replace(PLACEHOLDER, '').matchAll(leftover)) {
    problems.push(`malformed placeholder ${JSON.stringify(m[0])}`);
  }
  if (missing.length > 0) {
    throw new TemplateError(
      `template ${name} references unknown value${missing.length > 1 ? 's' : ''} ${missing.map((p) => `"${p}"`).join(', ')}` +
        (problems.length ? `; also: ${problems.join('; ')}` : ''),
      name,
      missing,
    );
  }
  if (problems.length > 0) throw new TemplateError(`template ${name}: ${problems.join('; ')}`, name);
  return out;
}
