import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorBox, html, page, raw, sendStreamed, STREAM_MARK, type SafeHtml } from '../web-pages/index.ts';

/** The dashboard's sections, in the order the navigation shows them. */
export const SECTIONS = [
  { key: 'overview', href: '/admin/', label: 'Overview' },
  { key: 'members', href: '/admin/members', label: 'Members' },
  { key: 'tailscale', href: '/admin/tailscale', label: 'Remote access' },
  { key: 'backups', href: '/admin/backups', label: 'Backups' },
  { key: 'account', href: '/admin/account', label: 'Your account' },
  { key: 'power', href: '/admin/power', label: 'Power' },
  { key: 'audit', href: '/admin/audit', label: 'Audit log' },
] as const;
export type Section = (typeof SECTIONS)[number]['key'];

export interface DashboardPage {
  section: Section;
  title: string;
  body: SafeHtml;
  refreshSeconds?: number;
  status?: number;
}

function render(request: FastifyRequest, reply: FastifyReply, p: DashboardPage): string {
  return page({
    title: p.title,
    body: p.body,
    nav: SECTIONS.map((s) => ({ href: s.href, label: s.label, current: s.key === p.section })),
    signedIn: { displayName: request.admin!.displayName, csrfToken: reply.generateCsrf() },
    refreshSeconds: p.refreshSeconds,
  });
}

/** Pages carry the family's data: never kept by a browser cache or a proxy. */
function htmlHeaders(reply: FastifyReply, status = 200): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').type('text/html; charset=utf-8');
}

export function sendPage(request: FastifyRequest, reply: FastifyReply, p: DashboardPage): FastifyReply {
  return htmlHeaders(reply, p.status).send(render(request, reply, p));
}

/**
 * A person's name inside a sentence of plain text (titles, notices), isolated with
 * Unicode's FSI…PDI so an Arabic or Hebrew name does not reorder the English around it;
 * in markup, <bdi> does the same.
 */
export function isolate(name: string): string {
  return `\u2068${name}\u2069`;
}

/** The hidden field every form posts (the CSRF check refuses a change without it). */
export function csrfField(reply: FastifyReply): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">`;
}

export interface FieldOptions {
  name: string;
  label: string;
  hint?: string;
  error?: string;
  type?: 'text' | 'password';
  autocomplete?: string;
  value?: string;
  extra?: SafeHtml;
}

/** A labelled input; its hint and error are tied to it for screen readers. */
export function field(o: FieldOptions): SafeHtml {
  const id = `f-${o.name}`;
  const described = [o.hint ? `${id}-hint` : '', o.error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return html`<label for="${id}">${o.label}${o.hint ? html` <span class="hint" id="${id}-hint">${o.hint}</span>` : ''}</label>
${o.error ? html`<span class="field-error" id="${id}-error">${o.error}</span>` : ''}
<input id="${id}" name="${o.name}" type="${o.type ?? 'text'}" required${o.autocomplete ? html` autocomplete="${o.autocomplete}"` : ''}${described ? html` aria-describedby="${described}"` : ''}${o.error ? html` aria-invalid="true"` : ''}${o.value !== undefined ? html` value="${o.value}"` : ''}${o.extra ?? ''}>`;
}

/** A notice shown once on the next page after a redirect (Post/Redirect/Get). */
export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

/** Notices waiting for the admin's next page, per session; in memory, since they matter only for the next few seconds. */
export class Notices {
  private readonly bySession = new Map<string, Notice[]>();

  add(request: FastifyRequest, notice: Notice): void {
    this.addFor(request.admin!.sessionIdHash, notice);
  }

  /** For the session a request is about to get (a password change starts a new one). */
  addFor(key: string, notice: Notice): void {
    const list = this.bySession.get(key) ?? [];
    list.push(notice);
    this.bySession.delete(key);
    this.bySession.set(key, list.slice(-5));
    // A session that never comes back must not keep its notices forever.
    for (const oldest of this.bySession.keys()) {
      if (this.bySession.size <= 100) break;
      this.bySession.delete(oldest);
    }
  }

  take(request: FastifyRequest): SafeHtml {
    const key = request.admin!.sessionIdHash;
    const list = this.bySession.get(key) ?? [];
    this.bySession.delete(key);
    return html`${list.map((n) => (n.kind === 'error' ? errorBox(n.text) : html`<div class="notice" role="status">${n.text}</div>`))}`;
  }
}

export interface ConfirmOptions {
  section: Section;
  title: string;
  /** What will happen, in a sentence or two. */
  explanation: SafeHtml | string;
  action: string;
  button: string;
  danger?: boolean;
  cancelHref: string;
  hidden?: Record<string, string>;
}

/** The page a consequential action asks on; only its form's POST (with confirm=yes) acts. */
export function sendConfirmPage(request: FastifyRequest, reply: FastifyReply, o: ConfirmOptions): FastifyReply {
  const body = html`<form method="post" action="${o.action}" class="card">
${csrfField(reply)}
<input type="hidden" name="confirm" value="yes">
${Object.entries(o.hidden ?? {}).map(([name, value]) => html`<input type="hidden" name="${name}" value="${value}">`)}
<p>${o.explanation}</p>
<button type="submit"${o.danger ? html` class="danger"` : ''}>${o.button}</button>
<a class="button secondary" href="${o.cancelHref}">Cancel</a>
</form>`;
  return sendPage(request, reply, { section: o.section, title: o.title, body });
}

/** Whether a posted form carries the confirmation field of sendConfirmPage. */
export function confirmed(body: unknown): boolean {
  return (body as { confirm?: unknown } | undefined)?.confirm === 'yes';
}

/**
 * A page for work that takes seconds (making accounts), answered while it runs: the page
 * up to a progress note is sent at once, the result when the work is done, so the browser
 * shows progress without any script. The stylesheet hides the note once the result is
 * there. The answer is the POST's own, so a one-time password in it is never stored.
 */
export function sendStreamedPage(
  request: FastifyRequest,
  reply: FastifyReply,
  p: { section: Section; title: string; waiting: string },
  work: () => Promise<SafeHtml>,
  onError: (err: unknown) => SafeHtml,
): FastifyReply {
  const doc = render(request, reply, {
    section: p.section,
    title: p.title,
    body: html`<p class="notice progress no-print" role="status">${p.waiting}</p>${raw(STREAM_MARK)}`,
  });
  return sendStreamed(reply, doc, work, onError);
}
