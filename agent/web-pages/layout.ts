import { html, type SafeHtml } from './html.ts';

/** Where the agent serves its assets (under the front door's /admin/). */
export const ASSET_PATHS = { stylesheet: '/admin/assets/memu.css', progressScript: '/admin/assets/progress.js' } as const;

export interface PageOptions {
  title: string;
  body: SafeHtml;
  /** Navigation shown in the header (the dashboard's sections); none in the wizard. */
  nav?: { href: string; label: string; current?: boolean }[];
  /** The signed-in admin, shown with a sign-out button. */
  signedIn?: { displayName: string; csrfToken: string };
  /**
   * A progress page: reloads itself every this many seconds (progress.js, the one script
   * of the UI, a file so the Content-Security-Policy needs no exception; a meta refresh
   * would fail WCAG's timing rule). The page also offers a "Check again" link.
   */
  refreshSeconds?: number;
}

/** A whole page: one stylesheet, no script, the skip link and landmarks screen readers use. */
export function page(opts: PageOptions): string {
  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${opts.refreshSeconds ? html`<script src="${ASSET_PATHS.progressScript}" defer></script>` : ''}
<title>${opts.title} &middot; Memu</title>
<link rel="stylesheet" href="${ASSET_PATHS.stylesheet}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/admin/">Memu</a>
${opts.nav ? html`<nav class="main" aria-label="Dashboard"><ul>${opts.nav.map((n) => html`<li><a href="${n.href}"${n.current ? html` aria-current="page"` : ''}>${n.label}</a></li>`)}</ul></nav>` : ''}
${opts.signedIn ? html`<form method="post" action="/admin/logout" class="signout"><input type="hidden" name="_csrf" value="${opts.signedIn.csrfToken}"><button class="secondary" type="submit">Sign out ${opts.signedIn.displayName}</button></form>` : ''}
</header>
<main id="main"${opts.refreshSeconds ? html` data-refresh-seconds="${opts.refreshSeconds}"` : ''}>
<h1>${opts.title}</h1>
${opts.body}
${opts.refreshSeconds ? html`<p class="no-print"><a href="">Check again</a> (this page also checks by itself)</p>` : ''}
</main>
</body>
</html>
`;
  return doc.value;
}

/** The error box a form shows above itself: what happened and what to do. */
export function errorBox(message: string | undefined): SafeHtml | '' {
  return message ? html`<div class="error" role="alert">${message}</div>` : '';
}
