import type { HealthBody } from '../health/index.ts';
import type { ProvisioningState } from '../provisioning/index.ts';
import type { ReportedServiceStatus, StackModuleStatus } from '../stack/index.ts';
import { html, type SafeHtml } from '../web-pages/index.ts';
import type { DeviceFacts } from './device-facts.ts';
import { formatDuration, formatPercent, type FamilyFormats } from './format.ts';
import type { RestartJob } from './service-restarts.ts';
import type { StorageUse } from './storage-use.ts';

type Tone = 'ok' | 'warn' | 'bad';

/** A service's state and health in a word each, with the tones the page colours them in. */
export function serviceHealth(s: ReportedServiceStatus): { state: string; stateTone: Tone; health: string; healthTone?: Tone } {
  switch (s.state) {
    case 'healthy':
      return { state: 'running', stateTone: 'ok', health: 'healthy', healthTone: 'ok' };
    case 'running':
      return { state: 'running', stateTone: 'ok', health: 'no health check' };
    case 'starting':
      return { state: 'running', stateTone: 'ok', health: 'being checked', healthTone: 'warn' };
    case 'unhealthy':
      return { state: 'running', stateTone: 'ok', health: 'unhealthy', healthTone: 'bad' };
    case 'waiting':
      return { state: 'waiting', stateTone: 'warn', health: '—' };
    case 'pending':
      return { state: 'starting', stateTone: 'warn', health: '—' };
    case 'backing-off':
      return { state: 'restarting soon', stateTone: 'warn', health: '—' };
    case 'crash-looping':
      return { state: 'crash-looping', stateTone: 'bad', health: '—' };
    case 'exited':
      return { state: 'stopped', stateTone: s.exitCode === 0 ? 'ok' : 'bad', health: '—' };
    case 'error':
      return { state: 'error', stateTone: 'bad', health: '—' };
  }
}

export function serviceRestarts(s: ReportedServiceStatus): number {
  return 'restarts' in s ? s.restarts : 0;
}

/** The last thing that went wrong with a service, if its status says. */
export function serviceLastError(s: ReportedServiceStatus): string | undefined {
  switch (s.state) {
    case 'error':
      return s.reason;
    case 'backing-off':
    case 'crash-looping':
      return `exited with code ${s.exitCode}`;
    case 'exited':
      return s.exitCode === 0 ? undefined : `exited with code ${s.exitCode}`;
    case 'unhealthy':
      return 'its health check fails';
    default:
      return undefined;
  }
}

const tone = (t: Tone, text: string) => html`<span class="${t}">${text}</span>`;

export function healthCard(report: Pick<HealthBody, 'status' | 'reasons'> & { checks?: HealthBody['checks'] }, now = Date.now()): SafeHtml {
  const words = { ok: 'Everything is working.', starting: 'Memu is still starting.', degraded: 'Something needs attention.', unhealthy: 'Something is broken.' } as const;
  const t: Tone = report.status === 'ok' ? 'ok' : report.status === 'starting' || report.status === 'degraded' ? 'warn' : 'bad';
  const since = (at: number | undefined) => (at === undefined ? '' : html` <span class="hint">(for ${formatDuration((now - at) / 1000)})</span>`);
  const checks = report.checks ?? [];
  return html`<section class="card" aria-labelledby="h-status"><h2 id="h-status">Status</h2>
<p>${tone(t, words[report.status])}</p>
${report.reasons.length > 0 ? html`<ul>${report.reasons.map((r) => html`<li>${tone(r.status === 'unhealthy' ? 'bad' : 'warn', r.message)}${since(r.since)}${r.action ? html`<br>${r.action}` : ''}</li>`)}</ul>` : ''}
${checks.length > 0 ? html`<details><summary>All ${checks.length} checks</summary><ul class="compact">${checks.map((c) => html`<li>${tone(c.status === 'ok' ? 'ok' : c.status === 'degraded' ? 'warn' : 'bad', c.status)} ${c.reason}</li>`)}</ul></details>` : ''}
</section>`;
}

interface DeviceSummary {
  mode?: string;
  reason?: string;
  hostname?: string;
  warnings?: string[];
}

const STEP_WORDS: Record<ProvisioningState['state'], string> = {
  pending: 'not started yet',
  running: 'in progress',
  done: 'finished',
  failed: 'failed',
};

export function deviceCard(facts: DeviceFacts, report: HealthBody, fmt: FamilyFormats): SafeHtml {
  const provisioning = report.provisioning as ProvisioningState | undefined;
  const device = report.device as DeviceSummary | undefined;
  const rss = (report.agent as { rssBytes?: number } | undefined)?.rssBytes;
  const row = (label: string, value: SafeHtml | string | undefined) => (value === undefined || value === '' ? '' : html`<dt>${label}</dt><dd>${value}</dd>`);
  const setup = device?.mode === 'provisioned' ? 'from the settings file written before first boot' : device?.mode === 'wizard' ? 'with the setup wizard' : undefined;
  return html`<section class="card" aria-labelledby="h-device"><h2 id="h-device">Device</h2>
<dl class="facts">
${row('Name', device?.hostname)}
${row('Model', facts.model ?? 'not reported by the hardware')}
${row('Memu version', report.version)}
${row('Running for', facts.uptimeSeconds !== undefined ? formatDuration(facts.uptimeSeconds) : undefined)}
${row('Temperature', facts.temperature ? html`${tone(facts.temperature.celsius >= 80 ? 'bad' : facts.temperature.celsius >= 70 ? 'warn' : 'ok', `${facts.temperature.celsius.toLocaleString(fmt.locale)} °C`)} <span class="hint">(${facts.temperature.zone})</span>` : 'no sensor')}
${row('Agent memory', rss !== undefined ? fmt.bytes(rss) : undefined)}
</dl>
<h3>Setup history</h3>
${provisioning ? provisioningHistory(provisioning, setup, device) : html`<p>Not reported.</p>`}
</section>`;
}

function provisioningHistory(p: ProvisioningState, setup: string | undefined, device: DeviceSummary | undefined): SafeHtml {
  const t: Tone = p.state === 'failed' ? 'bad' : p.state === 'done' ? 'ok' : 'warn';
  return html`<p>First-boot setup ${tone(t, STEP_WORDS[p.state])}${setup ? `, ${setup}` : ''}.</p>
${p.state === 'running' ? html`<p>Now: ${p.step}</p>` : ''}
${p.state === 'failed' ? html`<p class="bad">Step ${p.step} failed: ${p.error}</p><p>Memu tries again on its own; restarting the device also retries.</p>` : ''}
${p.completed.length > 0 ? html`<details><summary>${p.completed.length} steps done</summary><ol class="compact">${p.completed.map((s) => html`<li>${s}${p.state === 'done' && p.ranThisBoot.includes(s) ? ' (this start)' : ''}</li>`)}</ol></details>` : ''}
${device?.warnings?.length ? html`<ul>${device.warnings.map((w) => html`<li class="warn">${w}</li>`)}</ul>` : ''}`;
}

export function servicesCard(status: StackModuleStatus, jobs: readonly RestartJob[]): SafeHtml {
  const header = html`<h2 id="h-services">Services</h2>`;
  if (status.state === 'none') return html`<section class="card" aria-labelledby="h-services">${header}<p>No apps are installed on this device: ${status.reason}.</p></section>`;
  const names = Object.keys(status.services).sort();
  const jobOf = (name: string) => jobs.find((j) => j.service === name);
  return html`<section class="card" aria-labelledby="h-services">${header}
${status.error ? html`<p class="bad">The apps could not be checked: ${status.error}</p>` : ''}
${status.loop.startsWith('paused') ? html`<p class="warn">Memu is holding the apps still (${status.loop.slice('paused: '.length)}).</p>` : ''}
${names.length === 0 ? html`<p>No services are known yet: Memu is still reading the installed apps.</p>` : ''}
<ul class="services">
${names.map((name) => {
  const s = status.services[name]!;
  const h = serviceHealth(s);
  const lastError = serviceLastError(s);
  const job = jobOf(name);
  return html`<li>
<h3>${name}</h3>
<dl class="inline">
<div><dt>State</dt><dd>${tone(h.stateTone, h.state)}</dd></div>
<div><dt>Health</dt><dd>${h.healthTone ? tone(h.healthTone, h.health) : h.health}</dd></div>
<div><dt>Restarts</dt><dd>${serviceRestarts(s)}</dd></div>
<div><dt>Last error</dt><dd>${lastError ?? 'none'}</dd></div>
</dl>
${s.state === 'healthy' || s.state === 'running' ? '' : html`<p class="hint">${s.summary}</p>`}
${job?.state === 'running' ? html`<p class="warn" role="status">Restarting&hellip;</p>` : ''}
${job?.state === 'done' ? html`<p class="ok" role="status">Restarted.</p>` : ''}
${job?.state === 'failed' ? html`<p class="bad" role="alert">The restart failed: ${job.error}</p>` : ''}
${job?.state !== 'running' ? html`<a class="button secondary" href="/admin/services/${encodeURIComponent(name)}/restart">Restart ${name}&hellip;</a>` : ''}
</li>`;
})}
</ul>
</section>`;
}

export function storageCard(data: { sizeBytes: number; freeBytes: number } | undefined, use: StorageUse, fmt: FamilyFormats): SafeHtml {
  const used = data ? data.sizeBytes - data.freeBytes : 0;
  const share = data && data.sizeBytes > 0 ? used / data.sizeBytes : 0;
  return html`<section class="card" aria-labelledby="h-storage"><h2 id="h-storage">Storage</h2>
${
  data
    ? html`<p>${fmt.bytes(data.freeBytes)} free of ${fmt.bytes(data.sizeBytes)} (${formatPercent(share, fmt.locale)} used).</p>
<meter min="0" max="1" low="0.8" high="0.9" optimum="0.2" value="${share.toFixed(3)}" aria-label="Space used">${formatPercent(share, fmt.locale)}</meter>
${share >= 0.9 ? html`<p class="bad">The data drive is nearly full: remove photos or videos you do not need, or move to a larger drive.</p>` : ''}`
    : html`<p class="bad">The data drive's size could not be read.</p>`
}
<h3>What uses it</h3>
${storageUse(use, fmt)}
</section>`;
}

function storageUse(use: StorageUse, fmt: FamilyFormats): SafeHtml {
  if (use.state === 'measuring') return html`<p role="status">Measuring&hellip; this takes a minute on a full drive; reload the page later.</p>`;
  if (use.state === 'failed') return html`<p class="bad">Measuring failed: ${use.error}. Memu tries again in 15 minutes.</p>`;
  return html`<table><thead><tr><th scope="col">Folder</th><th scope="col" class="size">Size</th></tr></thead><tbody>
${use.directories.map((d) => html`<tr><td>${d.label}</td><td class="size">${fmt.bytes(d.bytes)}</td></tr>`)}
</tbody></table>
<p class="hint">Measured ${fmt.time(use.at)}${use.refreshing ? '; measuring again now' : ''}.</p>`;
}

export function placeholderCard(id: string, title: string, text: string): SafeHtml {
  return html`<section class="card placeholder" aria-labelledby="h-${id}"><h2 id="h-${id}">${title} <span class="hint">(coming later)</span></h2><p>${text}</p></section>`;
}
