import QRCode from 'qrcode';
import type { ServiceAccountResult } from '../accounts/index.ts';
import { html, raw, type SafeHtml } from '../web-pages/index.ts';

/**
 * The sheet a member gets after their accounts were made or a password was reset: for
 * each app, the server address, the login and the one-time password (shown in this one
 * answer only, never stored), with QR codes of the address and the login for the phone —
 * never of the password. Printing prints the sheet alone (the stylesheet hides the rest).
 */
export const SERVICE_WORDS = {
  synapse: { name: 'Memu Chat', app: 'Element X (or Element)', login: 'Matrix user ID', server: 'Homeserver address' },
  immich: { name: 'Memu Memories', app: 'Immich', login: 'E-mail', server: 'Server URL' },
} as const;

/** Where the phone apps find the box on the home network. */
export function appAddresses(hostname: string): Record<ServiceAccountResult['service'], string> {
  return { synapse: `http://${hostname}`, immich: `http://${hostname}:2283` };
}

/** A QR code as inline SVG (the CSP allows no images from elsewhere), hidden from screen readers: the text beside it says the same. */
export async function qrCode(text: string, caption: string): Promise<SafeHtml> {
  const svg = await QRCode.toString(text, { type: 'svg', margin: 2, errorCorrectionLevel: 'M' });
  return html`<figure class="qr">${raw(svg.replace('<svg ', '<svg aria-hidden="true" focusable="false" '))}<figcaption>${caption}</figcaption></figure>`;
}

export interface SheetMember {
  username: string;
  displayName: string;
}

/** What became of one service's account, for the sheet and the members list. */
export function accountStateWords(r: ServiceAccountResult): { text: string; tone: 'ok' | 'warn' | 'bad' } {
  switch (r.state) {
    case 'created':
      return { text: 'ready', tone: 'ok' };
    case 'pending':
      return { text: 'not made yet', tone: 'warn' };
    case 'creating':
      return { text: 'being made', tone: 'warn' };
    case 'failed':
      return { text: 'failed', tone: 'bad' };
    case 'removing':
      return { text: 'being removed', tone: 'warn' };
    case 'removed':
      return { text: 'removed', tone: 'ok' };
    case 'unavailable':
      return { text: 'not available', tone: 'warn' };
  }
}

/** Whether trying again could help: a failure that says so, an account not made yet, a service that was not there. */
export function canRetry(r: ServiceAccountResult): boolean {
  if (r.state === 'failed') return r.retriable !== false;
  return r.state === 'pending' || r.state === 'creating' || r.state === 'unavailable';
}

export async function accountSheet(member: SheetMember, results: readonly ServiceAccountResult[], hostname: string, retryForm: SafeHtml): Promise<SafeHtml> {
  const addresses = appAddresses(hostname);
  const issued = results.some((r) => r.oneTimePassword);
  const cards = await Promise.all(
    results.map(async (r) => {
      const words = SERVICE_WORDS[r.service];
      const state = accountStateWords(r);
      const heading = html`<h2>${words.name} <span class="hint">in the ${words.app} app</span></h2>`;
      if (r.oneTimePassword) {
        return html`<section class="card sheet">${heading}
<dl class="facts">
<dt>${words.server}</dt><dd><code>${addresses[r.service]}</code></dd>
<dt>${words.login}</dt><dd><code>${r.login ?? member.username}</code></dd>
<dt>One-time password</dt><dd><span class="secret">${r.oneTimePassword}</span></dd>
</dl>
<div class="qr-pair">${await qrCode(addresses[r.service], words.server)}${r.login ? await qrCode(r.login, words.login) : ''}</div>
<p class="hint">Open ${words.app}, enter the ${words.server}, sign in with the ${words.login} and this password, then choose a new password.</p>
</section>`;
      }
      return html`<section class="card">${heading}
<p>The account is <span class="${state.tone}">${state.text}</span>${r.login ? html` (${r.login})` : ''}.</p>
${r.error ? html`<p>${r.state === 'unavailable' ? 'Why' : 'What happened'}: ${r.error}</p>` : ''}
${
  r.state === 'created'
    ? html`<p>Its password was handed out before and is not kept. If it is lost, reset it from the members list.</p>`
    : canRetry(r)
      ? html`<p>${r.state === 'unavailable' ? 'Once the app is running (see the Overview), try again.' : 'Try again; nothing is made twice.'}</p>`
      : ''
}
</section>`;
    }),
  );
  return html`${
    issued
      ? html`<div class="notice no-print" role="status"><strong>Shown only now.</strong> Print this page or copy the passwords for <bdi>${member.displayName}</bdi>: Memu does not keep them, and they cannot be shown again (you can reset a password later).</div>`
      : ''
  }
<p class="sheet-for">For <strong><bdi>${member.displayName}</bdi></strong> (${member.username})</p>
${cards}
${results.some(canRetry) ? retryForm : ''}
<p class="no-print"><a href="/admin/members">Back to the members</a></p>`;
}
