import type { BackupsStatus, SetItem, TargetStatus } from '../backups/index.ts';
import { html, type SafeHtml } from '../web-pages/index.ts';
import { formatDuration, type FamilyFormats } from './format.ts';

/** The parts of the Backups page and the overview's card, rendered from BackupService.status(). */

const when = (iso: string | undefined, fmt: FamilyFormats) => (iso ? fmt.time(Date.parse(iso)) : '');

const STAGES: Record<NonNullable<BackupsStatus['running']>['stage'], string> = {
  starting: 'Getting ready',
  database: 'Copying the databases (apps held still for a moment)',
  files: 'Copying photos and files',
  retention: 'Removing backups no longer kept',
  check: 'Checking the backup can be read',
  drill: 'Restore drill: restoring the newest backup into scratch space and comparing',
};

export function progressLine(running: NonNullable<BackupsStatus['running']>, fmt: FamilyFormats): SafeHtml {
  const parts: string[] = [];
  if (running.bytesDone !== undefined) parts.push(running.bytesTotal ? `${fmt.bytes(running.bytesDone)} of ${fmt.bytes(running.bytesTotal)}` : fmt.bytes(running.bytesDone));
  if (running.percent !== undefined && running.stage === 'files') parts.push(`${Math.floor(running.percent * 100)} %`);
  if (running.etaSeconds !== undefined && running.etaSeconds > 0) parts.push(`about ${formatDuration(running.etaSeconds)} left`);
  return html`<p class="notice" role="status">Backing up${running.target ? html` to <strong>${running.target.label}</strong>` : ''} (${running.targetsDone + 1} of ${running.targetsTotal}): ${STAGES[running.stage]}${running.database ? ` (${running.database})` : ''}${parts.length ? ` — ${parts.join(', ')}` : ''}.</p>`;
}

function lastBackup(t: TargetStatus, fmt: FamilyFormats): SafeHtml {
  const success = t.lastSuccess
    ? html`<span class="ok">${when(t.lastSuccess.at, fmt)}</span>, ${fmt.bytes(t.lastSuccess.bytesProcessed)} backed up (${fmt.bytes(t.lastSuccess.bytesAdded)} new)${t.lastSuccess.warnings > 0 ? html` <span class="warn">${t.lastSuccess.warnings} files could not be read</span>` : ''}`
    : html`<span class="warn">never</span>`;
  const failed = t.lastFailure && (!t.lastSuccess || t.lastFailure.at > t.lastSuccess.at);
  return html`${success}${failed ? html`<br><span class="bad">Failed ${when(t.lastFailure!.at, fmt)}:</span> ${t.lastFailure!.message}` : ''}${t.lastCheck && !t.lastCheck.ok ? html`<br><span class="bad">Check failed ${when(t.lastCheck.at, fmt)}:</span> ${t.lastCheck.message ?? ''}` : ''}`;
}

/** The overview's card: the last good backup per target, the next run, and the way to the page. */
export function backupsCard(status: BackupsStatus, fmt: FamilyFormats): SafeHtml {
  return html`<section class="card" aria-labelledby="h-backups"><h2 id="h-backups">Backups</h2>
${status.problem ? html`<p class="bad">${status.problem}</p>` : ''}
${status.running ? progressLine(status.running, fmt) : ''}
${
  status.targets.length === 0
    ? html`<p class="warn">Nothing is backed up yet.</p>`
    : html`<dl class="facts">${status.targets.map((t) => html`<dt>${t.label}</dt><dd>${lastBackup(t, fmt)}</dd>`)}</dl>`
}
${status.nextRunAt && !status.running ? html`<p>Next backup: ${when(status.nextRunAt, fmt)}.</p>` : ''}
<a class="button secondary" href="/admin/backups">Backups&hellip;</a>
</section>`;
}

export function targetsTable(status: BackupsStatus, fmt: FamilyFormats): SafeHtml {
  if (status.targets.length === 0) return html`<p class="warn">No backup target is set up: nothing is backed up. Add a USB drive or an off-site backup below.</p>`;
  return html`<table><thead><tr><th scope="col">Target</th><th scope="col">Last backup</th><th scope="col">Actions</th></tr></thead><tbody>
${status.targets.map(
  (t) => html`<tr><td><strong>${t.label}</strong><br><span class="hint">${t.address}</span></td><td>${lastBackup(t, fmt)}</td>
<td><a href="/admin/backups/targets/${t.id}/sets">Browse and restore</a><br><a href="/admin/backups/targets/${t.id}/remove">Remove&hellip;</a></td></tr>`,
)}
</tbody></table>`;
}

export function itemsTable(targetId: string, runId: string, items: readonly SetItem[], fmt: FamilyFormats): SafeHtml {
  if (items.length === 0) return html`<p>This folder is empty.</p>`;
  const base = `/admin/backups/targets/${targetId}/sets/${encodeURIComponent(runId)}`;
  return html`<table><thead><tr><th scope="col">Name</th><th scope="col" class="size">Size</th><th scope="col">Actions</th></tr></thead><tbody>
${items.map(
  (i) => html`<tr><td>${i.type === 'dir' ? html`<a href="${base}?path=${encodeURIComponent(i.path)}">${i.name}/</a>` : i.name}</td><td class="size">${i.size !== undefined ? fmt.bytes(i.size) : ''}</td>
<td><a href="${base}/restore?path=${encodeURIComponent(i.path)}">Restore&hellip;</a></td></tr>`,
)}
</tbody></table>`;
}

/** The last restore drill, in a sentence. */
export function drillLine(status: BackupsStatus, fmt: FamilyFormats): SafeHtml {
  const d = status.lastDrill;
  if (!d) return html`<p>No restore drill has run yet: the first runs with the weekly check, or now with the button.</p>`;
  return d.ok
    ? html`<p><span class="ok">The last restore drill passed</span> (${when(d.at, fmt)}): ${d.databases} databases restored and ${d.filesCompared} files compared.</p>`
    : html`<p><span class="bad">The last restore drill failed</span> (${when(d.at, fmt)}): ${d.problems.join('; ')}</p>`;
}
