/**
 * HTML built from template literals with every interpolated value escaped, so a family
 * or member name in any script (or with `<script>` in it) is shown as text. Markup passes
 * through only as SafeHtml: from another html`` template, or from raw() for markup the
 * agent made itself (a QR code's SVG).
 */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Markup the agent made itself; never text that came from a person or a request. */
export function raw(markup: string): SafeHtml {
  return new SafeHtml(markup);
}
