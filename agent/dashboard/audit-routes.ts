import type { FastifyPluginAsync } from 'fastify';
import { recentAudit, type AuditEntry } from '../audit-log/index.ts';
import { html, type SafeHtml } from '../web-pages/index.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { sendPage } from './dashboard-page.ts';
import type { FamilyFormats } from './format.ts';

/** GET /admin/audit: the latest entries of the audit log, newest first, in the family's time zone. */
export const AUDIT_PAGE_ENTRIES = 200;

/** What each action is called on the page; an action without words is shown by its name. */
export const ACTION_WORDS: Record<string, string> = {
  'admin.sign-in': 'signed in',
  'admin.sign-out': 'signed out',
  'admin.sign-out-everywhere': 'signed out everywhere',
  'admin.password-change': 'changed their password',
  'member.add': 'added a member',
  'member.accounts': "made a member's accounts",
  'member.reset-password': "reset a member's password",
  'member.remove': 'removed a member',
  'member.remove-failed': 'could not remove a member everywhere',
  'service.restart': 'restarted a service',
  'service.restarted': 'service restart finished',
  'service.restart-failed': 'service restart failed',
  'tailscale.join': 'started joining a tailnet',
  'tailscale.join-result': 'tailnet join finished',
  'tailscale.leave': 'left the tailnet',
  'tailscale.leave-failed': 'could not leave the tailnet',
  'power.restart': 'restarted the device',
  'power.restart-failed': 'restarting the device failed',
  'power.shutdown': 'shut the device down',
  'power.shutdown-failed': 'shutting the device down failed',
};

/** An entry's details as "key: value" pairs (values that are not text as JSON), cut at 300 characters so the page stays small. */
export function auditDetail(detail: Record<string, unknown>): string {
  const text = Object.entries(detail)
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
  return text.length > 300 ? `${text.slice(0, 299)}…` : text;
}

export function auditList(entries: readonly AuditEntry[], fmt: FamilyFormats): SafeHtml {
  if (entries.length === 0) return html`<p>Nothing has been recorded yet.</p>`;
  return html`<ol class="audit">${entries.map((e) => {
    const detail = auditDetail(e.detail);
    return html`<li><time datetime="${new Date(e.at).toISOString()}">${fmt.time(e.at)}</time> <strong>${e.actor}</strong> ${ACTION_WORDS[e.action] ?? e.action}${detail ? html`<br><span class="hint">${detail}</span>` : ''}</li>`;
  })}</ol>`;
}

export function auditRoutes(ctx: DashboardContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/audit', async (request, reply) => {
      const fmt = await ctx.formats();
      const entries = recentAudit(ctx.opts.db(), AUDIT_PAGE_ENTRIES);
      const body = html`<p>Everything done from this dashboard and the setup wizard, newest first (the latest ${AUDIT_PAGE_ENTRIES}). Times are ${fmt.timeZone} time.</p>
${auditList(entries, fmt)}`;
      return sendPage(request, reply, { section: 'audit', title: 'Audit log', body });
    });
  };
}
