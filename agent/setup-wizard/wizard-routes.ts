import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import type { Logger } from 'pino';
import type { AccountService, ServiceAccountResult } from '../accounts/index.ts';
import { prepareAdmin, type AdminAuthModule, type FieldProblems } from '../admin-auth/index.ts';
import { recordAudit } from '../audit-log/index.ts';
import { normalizeClaimCode } from '../../shared/contracts/preseed.ts';
import { verifyClaimCode } from '../claim-code/index.ts';
import { applyStoredDeviceSettings, readStoredSettings, writeStoredSettings, writeStoredWifi, wpaPskFromPassphrase, type RootEffects } from '../device-settings/index.ts';
import type { FamilyDb } from '../family-db/index.ts';
import { accountSheet, type FamilyMembersModule, type SheetMember } from '../family-members/index.ts';
import type { TailscaleControl } from '../tailscale/index.ts';
import { errorBox, html, page, raw, sendStreamed, STREAM_MARK, type SafeHtml } from '../web-pages/index.ts';
import { clearClaimTicket, hasClaimTicket, issueClaimTicket } from './claim-ticket.ts';
import { networkLinks } from './network-links.ts';
import { scanWifi, type WifiNetwork } from './wifi-scan.ts';
import { completeStep, readProgress, STEP_TITLES, stepPath, WIZARD_STEPS, type WizardStep } from './wizard-progress.ts';

export interface SetupWizardDeps {
  db: () => FamilyDb;
  dataDir: string;
  adminAuth: Pick<AdminAuthModule, 'sessions' | 'limiter'>;
  members: Pick<FamilyMembersModule, 'add' | 'list' | 'check'>;
  /** The stored hash of the claim code (device-secrets), undefined before first boot made it. */
  claimCodeHash: () => Promise<string | undefined>;
  /** tailscaled through its LocalAPI; undefined when the stack runs no tailscaled. */
  tailscale: () => Promise<TailscaleControl | undefined>;
  rootEffects: RootEffects;
  sysClassNetDir?: string;
  /** Wi-Fi networks in reach of `iface`; the device's `iw` by default. */
  scanWifi?: (iface: string) => Promise<WifiNetwork[]>;
  log: Logger;
}

/** Languages the dashboard formats dates and numbers for, named in their own language. */
export const LANGUAGES: Record<string, string> = {
  'en-GB': 'English (UK)',
  'en-US': 'English (US)',
  'de-DE': 'Deutsch',
  'fr-FR': 'Français',
  'es-ES': 'Español',
  'it-IT': 'Italiano',
  'nl-NL': 'Nederlands',
  'pt-PT': 'Português',
  'pl-PL': 'Polski',
  'sv-SE': 'Svenska',
  'tr-TR': 'Türkçe',
  'ar': 'العربية',
  'zh-CN': '中文（简体）',
  'ja-JP': '日本語',
};

const SERVICE_LABELS: Record<AccountService, string> = { synapse: 'Memu Chat', immich: 'Memu Memories' };

/** A scan's signal in words a family understands. */
function signalWords(dbm: number): string {
  if (dbm >= -55) return 'strong signal';
  if (dbm >= -70) return 'good signal';
  return 'weak signal';
}

function stepList(current: WizardStep, completed: readonly WizardStep[]): SafeHtml {
  return html`<ol class="steps" aria-label="Setup steps">${WIZARD_STEPS.map(
    (s) => html`<li${s === current ? html` aria-current="step"` : ''}${completed.includes(s) ? html` class="done"` : ''}>${STEP_TITLES[s]}</li>`,
  )}</ol>`;
}

function fieldError(problems: FieldProblems | Record<string, string | undefined>, field: string): SafeHtml | '' {
  const p = (problems as Record<string, string | undefined>)[field];
  return p ? html`<span class="hint bad" id="${field}-error">${p}</span>` : '';
}

const described = (problems: Record<string, string | undefined>, field: string) => (problems[field] ? html` aria-invalid="true" aria-describedby="${field}-error"` : '');

export function setupWizardRoutes(deps: SetupWizardDeps): FastifyPluginAsync {
  const progress = () => readProgress(deps.db());

  const show = (reply: FastifyReply, step: WizardStep, body: SafeHtml, opts: { status?: number; refreshSeconds?: number } = {}) => {
    const p = progress();
    return reply
      .code(opts.status ?? 200)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(page({ title: STEP_TITLES[step], body: html`${stepList(step, p.completed)}${body}`, refreshSeconds: opts.refreshSeconds }));
  };

  /** A step's page may be shown once the steps before it are done; else the first unfinished one. */
  const guard = (request: FastifyRequest, reply: FastifyReply, step: WizardStep): boolean => {
    const p = progress();
    if (p.finished) {
      void reply.redirect('/admin/', 303);
      return false;
    }
    const index = WIZARD_STEPS.indexOf(step);
    // Claiming and creating the admin happen once; later steps may be visited again.
    const once = step === 'claim' || step === 'admin';
    if (WIZARD_STEPS.slice(0, index).some((s) => !p.completed.includes(s)) || (once && p.completed.includes(step) && (step === 'claim' ? p.completed.includes('admin') : true))) {
      void reply.redirect(stepPath(p.current), 303);
      return false;
    }
    // After the admin step every step is the admin's.
    if (index > WIZARD_STEPS.indexOf('admin') && !request.admin) {
      void reply.redirect(`/admin/login?next=${encodeURIComponent(stepPath(step))}`, 303);
      return false;
    }
    return true;
  };

  const actor = (request: FastifyRequest) => request.admin?.username ?? 'setup';

  return async (app) => {
    // For the front door: whether setup is finished (204) or not (401), nothing else.
    app.get('/setup/state', { config: { access: 'public' } }, async (_request, reply) => reply.code(progress().finished ? 204 : 401).send());

    app.get('/setup', { config: { access: 'public' } }, async (_request, reply) => {
      const p = progress();
      return reply.redirect(p.finished ? '/admin/' : stepPath(p.current), 303);
    });

    // 1. Claim: the code on the label, rate-limited per client and for everyone together.
    const claimPage = (reply: FastifyReply, error?: string, status?: number, prefill?: string) =>
      show(
        reply,
        'claim',
        html`<p>Type the claim code printed on the label under your Memu (four groups of four letters and digits). It proves this Memu is yours; nobody else on your network can set it up without it.</p>
${errorBox(error)}
<form method="post" action="/admin/setup/claim" class="card">
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
<label for="code">Claim code <span class="hint">for example 7K3M-Q9XD-2HFT-B8RW; capitals, spaces and dashes do not matter</span></label>
<input id="code" name="code" autocomplete="off" autocapitalize="characters" spellcheck="false" required${prefill ? html` value="${prefill}"` : ''}${error ? html` aria-invalid="true"` : ''}>
<button type="submit">Claim</button>
</form>`,
        { status },
      );

    // `?code=` comes from the QR code on the label (memu qa labels): the field is filled in,
    // and the owner still presses Claim. Anything that is not a claim code is ignored.
    app.get<{ Querystring: { code?: string } }>('/setup/claim', { config: { access: 'public' } }, async (request, reply) => {
      if (!guard(request, reply, 'claim')) return reply;
      if (hasClaimTicket(request)) return reply.redirect(stepPath('admin'), 303);
      const fromLabel = typeof request.query.code === 'string' ? normalizeClaimCode(request.query.code) : undefined;
      return claimPage(reply, undefined, undefined, fromLabel);
    });

    app.post('/setup/claim', { config: { access: 'public', rateLimit: { max: 20, timeWindow: '1 minute' } } }, async (request, reply) => {
      if (!guard(request, reply, 'claim')) return reply;
      const keys = [
        { kind: 'claim-client', key: `claim:ip:${request.ip}` },
        { kind: 'claim-global', key: 'claim:global' },
      ];
      const verdict = deps.adminAuth.limiter.check(keys);
      if (!verdict.allowed) {
        reply.header('retry-after', String(verdict.retryAfterSeconds));
        return claimPage(reply, `Too many wrong codes. Wait ${verdict.retryAfterSeconds} seconds, then type the code from the label again.`, 429);
      }
      const stored = await deps.claimCodeHash();
      if (!stored) return claimPage(reply, 'This Memu is still starting up and has no claim code yet. Wait a minute and try again.', 503);
      const code = String((request.body as { code?: string }).code ?? '');
      if (!(await verifyClaimCode(code, stored))) {
        deps.adminAuth.limiter.recordFailure(keys);
        deps.db().transaction(() => recordAudit(deps.db(), 'setup', 'setup.claim-refused', { from: request.ip }));
        return claimPage(reply, 'That is not the claim code of this Memu. Check the label and type it again.', 403);
      }
      deps.adminAuth.limiter.clear([keys[0]!]);
      issueClaimTicket(reply);
      deps.db().transaction(() => completeStep(deps.db(), 'claim', 'setup', { from: request.ip }));
      return reply.redirect(stepPath('admin'), 303);
    });

    // 2. The family's name and its admin; the admin is signed in from here on.
    const adminPage = (reply: FastifyReply, values: Record<string, string> = {}, problems: FieldProblems = {}, status?: number) =>
      show(
        reply,
        'admin',
        html`<p>You become this Memu's admin: the one who adds family members and looks after the box.</p>
<p class="hint">Replacing a Memu that was lost or broken? <a href="/admin/setup/restore">Restore it from its backup</a> instead.</p>
${Object.keys(problems).length ? errorBox('Some answers need another look: see the notes below each field.') : ''}
<form method="post" action="/admin/setup/admin" class="card">
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
<label for="familyName">Family name <span class="hint">shown in the apps, e.g. "The Okafors"</span></label>
<input id="familyName" name="familyName" required maxlength="100" value="${values.familyName ?? ''}"${described(problems, 'familyName')}>${fieldError(problems, 'familyName')}
<label for="displayName">Your name</label>
<input id="displayName" name="displayName" required maxlength="100" autocomplete="name" value="${values.displayName ?? ''}"${described(problems, 'displayName')}>${fieldError(problems, 'displayName')}
<label for="username">Username <span class="hint">lowercase letters and digits, e.g. "mum"</span></label>
<input id="username" name="username" required maxlength="32" autocomplete="username" autocapitalize="none" value="${values.username ?? ''}"${described(problems, 'username')}>${fieldError(problems, 'username')}
<label for="password">Password <span class="hint">at least 12 characters; a few words in a row work well</span></label>
<input id="password" name="password" type="password" required minlength="12" autocomplete="new-password"${described(problems, 'password')}>${fieldError(problems, 'password')}
<button type="submit">Create the admin</button>
</form>`,
        { status },
      );

    app.get('/setup/admin', { config: { access: 'public' } }, async (request, reply) => {
      if (!guard(request, reply, 'admin')) return reply;
      if (progress().completed.includes('admin')) return reply.redirect(stepPath(progress().current), 303);
      if (!hasClaimTicket(request)) return reply.redirect(stepPath('claim'), 303);
      return adminPage(reply);
    });

    app.post('/setup/admin', { config: { access: 'public' } }, async (request, reply) => {
      if (!guard(request, reply, 'admin')) return reply;
      if (progress().completed.includes('admin')) return reply.redirect(stepPath(progress().current), 303);
      if (!hasClaimTicket(request)) return reply.redirect(stepPath('claim'), 303);
      const form = request.body as Record<string, string | undefined>;
      const values = { familyName: (form.familyName ?? '').trim(), displayName: (form.displayName ?? '').trim(), username: (form.username ?? '').trim().toLowerCase() };
      const prepared = await prepareAdmin({ ...values, password: form.password ?? '' });
      const problems: FieldProblems = 'problems' in prepared ? { ...prepared.problems } : {};
      if (values.familyName === '' || [...values.familyName].length > 100) problems.familyName = 'give a family name of at most 100 characters';
      if ('problems' in prepared || Object.keys(problems).length) return adminPage(reply, values, problems, 400);
      const now = Date.now();
      deps.db().transaction(() => {
        deps.db().run('INSERT INTO family (id, name, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name', [values.familyName, now]);
        deps.db().run('INSERT INTO admins (username, display_name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?, ?)', [
          values.username,
          values.displayName,
          prepared.passwordHash,
          now,
          now,
        ]);
        completeStep(deps.db(), 'admin', values.username, { family: values.familyName });
        deps.adminAuth.sessions.start(values.username, reply, request.headers['user-agent']);
      });
      const settings = await readStoredSettings(deps.dataDir);
      if (settings) await writeStoredSettings(deps.dataDir, { ...settings, familyName: values.familyName });
      clearClaimTicket(reply);
      return reply.redirect(stepPath('network'), 303);
    });

    // 3. Network: the wired link, or joining Wi-Fi.
    const networkPage = async (reply: FastifyReply, problems: Record<string, string | undefined> = {}, notice?: string) => {
      const links = await networkLinks(deps.sysClassNetDir);
      const wired = links.filter((l) => l.kind === 'wired');
      const wireless = links.filter((l) => l.kind === 'wireless');
      const online = links.some((l) => l.connected);
      const seen = wireless[0] ? await (deps.scanWifi ?? scanWifi)(wireless[0].name).catch((err: Error) => {
        deps.log.warn({ err }, 'Wi-Fi scan failed');
        return [] as WifiNetwork[];
      }) : [];
      return show(
        reply,
        'network',
        html`${notice ? html`<div class="notice" role="status">${notice}</div>` : ''}
<div class="card"><h2>Cable</h2>${
          wired.length
            ? html`<ul>${wired.map((l) => html`<li>${l.name}: ${l.connected ? html`<span class="ok">connected</span>` : html`<span class="warn">no cable</span>`}</li>`)}</ul>`
            : html`<p>This Memu has no network socket.</p>`
        }</div>
${
  wireless.length
    ? html`<form method="post" action="/admin/setup/network" class="card">
<h2>Wi-Fi</h2>
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
${seen.length ? html`<p>Networks in reach, strongest first:</p><ul>${seen.map((n) => html`<li>${n.ssid} <span class="hint">${n.secured ? 'password needed' : 'open'}, ${signalWords(n.signalDbm)}</span></li>`)}</ul>` : html`<p class="hint">No networks found in reach; type the name of yours.</p>`}
<label for="ssid">Network name</label><input id="ssid" name="ssid" maxlength="32" required list="networks"${described(problems, 'ssid')}><datalist id="networks">${seen.map((n) => html`<option value="${n.ssid}"></option>`)}</datalist>${fieldError(problems, 'ssid')}
<label for="passphrase">Password <span class="hint">leave empty for an open network</span></label><input id="passphrase" name="passphrase" type="password" autocomplete="off"${described(problems, 'passphrase')}>${fieldError(problems, 'passphrase')}
<label for="country">Country <span class="hint">two letters, e.g. GB; Wi-Fi channels differ by country</span></label><input id="country" name="country" maxlength="2" required autocapitalize="characters"${described(problems, 'country')}>${fieldError(problems, 'country')}
<button type="submit">Join Wi-Fi</button>
</form>`
    : html`<p>This Memu has no Wi-Fi adapter${wired.length ? ': use the cable.' : '.'}</p>`
}
<form method="post" action="/admin/setup/network/next"><input type="hidden" name="_csrf" value="${reply.generateCsrf()}"><button type="submit"${online ? '' : html` class="secondary"`}>${online ? 'Continue' : 'Continue without a network'}</button></form>`,
        { status: Object.keys(problems).length ? 400 : 200 },
      );
    };

    app.get('/setup/network', async (request, reply) => (guard(request, reply, 'network') ? networkPage(reply) : reply));

    app.post('/setup/network', async (request, reply) => {
      if (!guard(request, reply, 'network')) return reply;
      const form = request.body as Record<string, string | undefined>;
      const ssid = form.ssid ?? '';
      const passphrase = form.passphrase ?? '';
      const country = (form.country ?? '').trim().toUpperCase();
      const problems: Record<string, string | undefined> = {};
      if (ssid === '' || Buffer.byteLength(ssid) > 32) problems.ssid = 'give the network name (at most 32 bytes)';
      if (passphrase !== '' && !/^[\x20-\x7e]{8,63}$/.test(passphrase) && !/^[0-9a-fA-F]{64}$/.test(passphrase)) problems.passphrase = 'a Wi-Fi password has 8 to 63 characters';
      if (!/^[A-Z]{2}$/.test(country)) problems.country = 'two capital letters, such as GB or US';
      if (Object.keys(problems).length) return networkPage(reply, problems);
      await writeStoredWifi(deps.dataDir, { ssid, country, psk: passphrase ? wpaPskFromPassphrase(passphrase, ssid) : undefined });
      await applyStoredDeviceSettings(deps.dataDir, deps.rootEffects);
      deps.db().transaction(() => recordAudit(deps.db(), actor(request), 'network.wifi', { ssid }));
      return networkPage(reply, {}, `Joining "${ssid}". The box keeps these settings; if the network is right, the Wi-Fi line above says connected within a minute (reload the page).`);
    });

    app.post('/setup/network/next', async (request, reply) => {
      if (!guard(request, reply, 'network')) return reply;
      deps.db().transaction(() => completeStep(deps.db(), 'network', actor(request)));
      return reply.redirect(stepPath('region'), 303);
    });

    // 4. Time zone (applied to the system) and language (the dashboard's dates and numbers).
    const regionPage = async (reply: FastifyReply, error?: string) => {
      const settings = await readStoredSettings(deps.dataDir);
      const zone = settings?.timezone ?? 'UTC';
      const language = settings?.locale && LANGUAGES[settings.locale] ? settings.locale : 'en-GB';
      const zones = Intl.supportedValuesOf('timeZone');
      return show(
        reply,
        'region',
        html`${errorBox(error)}<form method="post" action="/admin/setup/region" class="card">
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
<label for="timezone">Time zone</label>
<select id="timezone" name="timezone">${zones.map((z) => html`<option${z === zone ? html` selected` : ''}>${z}</option>`)}${zones.includes(zone) ? '' : html`<option selected>${zone}</option>`}</select>
<label for="locale">Language and formats</label>
<select id="locale" name="locale">${Object.entries(LANGUAGES).map(([tag, name]) => html`<option value="${tag}"${tag === language ? html` selected` : ''}>${name}</option>`)}</select>
<button type="submit">Save and continue</button>
</form>`,
        { status: error ? 400 : 200 },
      );
    };

    app.get('/setup/region', async (request, reply) => (guard(request, reply, 'region') ? regionPage(reply) : reply));

    app.post('/setup/region', async (request, reply) => {
      if (!guard(request, reply, 'region')) return reply;
      const form = request.body as Record<string, string | undefined>;
      const timezone = form.timezone ?? '';
      const locale = form.locale ?? '';
      if (!Intl.supportedValuesOf('timeZone').includes(timezone) && timezone !== 'UTC') return regionPage(reply, 'Choose a time zone from the list.');
      if (!LANGUAGES[locale]) return regionPage(reply, 'Choose a language from the list.');
      const settings = await readStoredSettings(deps.dataDir);
      if (!settings) return regionPage(reply, 'The box has not finished its first start yet. Wait a minute and try again.');
      await writeStoredSettings(deps.dataDir, { ...settings, timezone, locale });
      await applyStoredDeviceSettings(deps.dataDir, deps.rootEffects);
      deps.db().transaction(() => completeStep(deps.db(), 'region', actor(request), { timezone, locale }));
      return reply.redirect(stepPath('remote'), 303);
    });

    // 5. Tailscale: an auth key, or signing in with a browser; skippable.
    const remotePage = async (reply: FastifyReply, error?: string) => {
      const control = await deps.tailscale().catch(() => undefined);
      const status = control ? await control.status().catch(() => undefined) : undefined;
      const csrf = reply.generateCsrf();
      const next = html`<form method="post" action="/admin/setup/remote/next"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit"${status?.BackendState === 'Running' ? '' : html` class="secondary"`}>${status?.BackendState === 'Running' ? 'Continue' : 'Skip for now'}</button></form>`;
      if (!status) {
        return show(reply, 'remote', html`${errorBox(error)}<p>Tailscale is not running on this Memu, so it can only be reached at home for now. You can set it up later from the dashboard.</p>${next}`);
      }
      if (status.BackendState === 'Running') {
        const name = status.Self?.DNSName?.replace(/\.$/, '');
        return show(reply, 'remote', html`<p class="ok">This Memu is on your tailnet.</p><p>From anywhere, open <strong>http://${name ?? status.Self?.TailscaleIPs?.[0] ?? '?'}</strong> on a device that is on the same tailnet.</p>${next}`);
      }
      if (status.AuthURL) {
        const qr = await QRCode.toString(status.AuthURL, { type: 'svg', margin: 1 });
        return show(
          reply,
          'remote',
          html`<p>Open this link on a phone or computer and sign in to Tailscale. This page updates by itself.</p>
<p><a href="${status.AuthURL}" rel="noreferrer">${status.AuthURL}</a></p><div class="qr" role="img" aria-label="QR code of the sign-in link">${raw(qr)}</div>${next}`,
          { refreshSeconds: 3 },
        );
      }
      return show(
        reply,
        'remote',
        html`<p>Tailscale lets the family reach this Memu from anywhere, privately, without opening the home router.</p>${errorBox(error)}
<form method="post" action="/admin/setup/remote/login" class="card"><input type="hidden" name="_csrf" value="${csrf}"><h2>Sign in with Tailscale</h2><p>Shows a link and a QR code to sign in on another device.</p><button type="submit">Sign in with a browser</button></form>
<form method="post" action="/admin/setup/remote/key" class="card"><input type="hidden" name="_csrf" value="${csrf}"><h2>Or use an auth key</h2>
<label for="authKey">Auth key <span class="hint">from the Tailscale admin console, Settings &rarr; Keys; starts with tskey-</span></label><input id="authKey" name="authKey" autocomplete="off" spellcheck="false">
<button type="submit">Join</button></form>${next}`,
        { status: error ? 400 : 200 },
      );
    };

    app.get('/setup/remote', async (request, reply) => (guard(request, reply, 'remote') ? remotePage(reply) : reply));

    app.post('/setup/remote/key', async (request, reply) => {
      if (!guard(request, reply, 'remote')) return reply;
      const authKey = String((request.body as { authKey?: string }).authKey ?? '').trim();
      if (!/^tskey-[A-Za-z0-9_-]+$/.test(authKey)) return remotePage(reply, 'That is not a Tailscale auth key: it starts with "tskey-".');
      const control = await deps.tailscale();
      if (!control) return remotePage(reply, 'Tailscale is not running on this Memu.');
      // Joining takes seconds (tailscaled asks the control server): show progress first.
      const doc = page({
        title: STEP_TITLES.remote,
        body: html`${stepList('remote', progress().completed)}<p class="notice progress no-print" role="status">Joining your tailnet&hellip;</p>${raw(STREAM_MARK)}<p><a href="/admin/setup/remote">Continue</a></p>`,
      });
      return sendStreamed(
        reply,
        doc,
        async () => {
          const result = await control.joinWithAuthKey(authKey);
          deps.db().transaction(() => recordAudit(deps.db(), actor(request), 'tailscale.join', { method: 'auth-key', ok: result.ok }));
          return result.ok
            ? html`<p class="ok">This Memu joined your tailnet.</p>`
            : html`${errorBox(`Tailscale did not accept the key: ${result.reason}. Make a new key and try again, or sign in with a browser.`)}`;
        },
        (err) => html`${errorBox(`Joining failed: ${(err as Error).message}. Try again.`)}`,
      );
    });

    app.post('/setup/remote/login', async (request, reply) => {
      if (!guard(request, reply, 'remote')) return reply;
      const control = await deps.tailscale();
      if (!control) return remotePage(reply, 'Tailscale is not running on this Memu.');
      await control.startInteractiveLogin().catch((err: Error) => deps.log.warn({ err }, 'tailscale interactive login failed to start'));
      deps.db().transaction(() => recordAudit(deps.db(), actor(request), 'tailscale.join', { method: 'browser' }));
      return reply.redirect(stepPath('remote'), 303);
    });

    app.post('/setup/remote/next', async (request, reply) => {
      if (!guard(request, reply, 'remote')) return reply;
      deps.db().transaction(() => completeStep(deps.db(), 'remote', actor(request)));
      return reply.redirect(stepPath('members'), 303);
    });

    // 6. Family members and their accounts; one-time passwords shown once, in this answer only.
    const membersPage = async (reply: FastifyReply, opts: { issued?: { member: SheetMember; results: ServiceAccountResult[] }; problems?: Record<string, string | undefined>; values?: Record<string, string> } = {}) => {
      const members = await deps.members.list().catch(() => []);
      const hostname = (await readStoredSettings(deps.dataDir))?.hostname ?? 'memu';
      const problems = opts.problems ?? {};
      const csrf = reply.generateCsrf();
      return show(
        reply,
        'members',
        html`${opts.issued ? await accountSheet(opts.issued.member, opts.issued.results, hostname, html`<p class="no-print">What failed can be tried again from the dashboard's Members page.</p>`) : ''}
<p>Add the people who will use Memu. Each gets an account for chat and photos, with a first password to change when they sign in.</p>
${Object.keys(problems).length ? errorBox('Some answers need another look: see the notes below each field.') : ''}
<form method="post" action="/admin/setup/members" class="card no-print"><input type="hidden" name="_csrf" value="${csrf}">
<label for="displayName">Name</label><input id="displayName" name="displayName" required maxlength="100" value="${opts.values?.displayName ?? ''}"${described(problems, 'displayName')}>${fieldError(problems, 'displayName')}
<label for="username">Username <span class="hint">lowercase, e.g. "anna"</span></label><input id="username" name="username" required maxlength="32" autocapitalize="none" value="${opts.values?.username ?? ''}"${described(problems, 'username')}>${fieldError(problems, 'username')}
<button type="submit">Add</button></form>
${members.length ? html`<div class="card no-print"><h2>Added</h2><ul>${members.map((m) => html`<li>${m.displayName} (${m.username}): ${m.accounts.map((a) => html`${SERVICE_LABELS[a.service]} ${a.state} `)}</li>`)}</ul></div>` : ''}
<form method="post" action="/admin/setup/members/next" class="no-print"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit">${members.length ? 'Continue' : 'Skip for now'}</button></form>`,
        { status: Object.keys(problems).length ? 400 : 200 },
      );
    };

    app.get('/setup/members', async (request, reply) => (guard(request, reply, 'members') ? membersPage(reply) : reply));

    app.post('/setup/members', async (request, reply) => {
      if (!guard(request, reply, 'members')) return reply;
      const form = request.body as Record<string, string | undefined>;
      const values = { displayName: (form.displayName ?? '').trim(), username: (form.username ?? '').trim().toLowerCase() };
      const problems = deps.members.check(values);
      if (problems) return membersPage(reply, { problems, values });
      // Making accounts takes seconds (both services hash the password): show progress first.
      const hostname = (await readStoredSettings(deps.dataDir))?.hostname ?? 'memu';
      const csrf = reply.generateCsrf();
      const doc = page({
        title: STEP_TITLES.members,
        body: html`${stepList('members', progress().completed)}<p class="notice progress no-print" role="status">Making ${values.displayName}'s accounts&hellip;</p>${raw(STREAM_MARK)}
<form method="post" action="/admin/setup/members/next" class="no-print"><input type="hidden" name="_csrf" value="${csrf}"><button type="submit" class="secondary">Continue</button></form>
<p class="no-print"><a href="/admin/setup/members">Add another member</a></p>`,
      });
      return sendStreamed(
        reply,
        doc,
        async () => {
          const added = await deps.members.add(values, actor(request));
          if ('problems' in added) return html`${errorBox(Object.values(added.problems).join('; '))}`;
          return accountSheet(added.member, added.accounts, hostname, html`<p class="no-print">What failed can be tried again from the dashboard's Members page.</p>`);
        },
        (err) => html`${errorBox(`Adding ${values.displayName} failed: ${(err as Error).message}. Try again.`)}`,
      );
    });

    app.post('/setup/members/next', async (request, reply) => {
      if (!guard(request, reply, 'members')) return reply;
      deps.db().transaction(() => completeStep(deps.db(), 'members', actor(request)));
      return reply.redirect(stepPath('done'), 303);
    });

    // 7. Done: where to find everything.
    app.get('/setup/done', async (request, reply) => {
      if (!guard(request, reply, 'done')) return reply;
      const settings = await readStoredSettings(deps.dataDir);
      const control = await deps.tailscale().catch(() => undefined);
      const status = control ? await control.status().catch(() => undefined) : undefined;
      const magic = status?.BackendState === 'Running' ? status.Self?.DNSName?.replace(/\.$/, '') : undefined;
      const host = settings?.hostname ?? 'memu';
      return show(
        reply,
        'done',
        html`<div class="card"><h2>At home</h2><p><strong>http://${host}.local</strong> (or http://${host} on most home networks)</p>
${magic ? html`<h2>Away</h2><p><strong>http://${magic}</strong> from any device on your tailnet</p>` : html`<p>To reach Memu away from home, set up Tailscale from the dashboard.</p>`}</div>
<div class="card"><h2>What is here</h2><ul><li><strong>Memu Chat</strong>: the family's messages, at the address above (Element on phones)</li><li><strong>Memu Memories</strong>: photos and videos, at port 2283 (the Immich app on phones)</li><li><strong>The dashboard</strong>: this box's health, members and settings, at /admin/</li></ul></div>
<form method="post" action="/admin/setup/done"><input type="hidden" name="_csrf" value="${reply.generateCsrf()}"><button type="submit">Go to the dashboard</button></form>`,
      );
    });

    app.post('/setup/done', async (request, reply) => {
      if (!guard(request, reply, 'done')) return reply;
      deps.db().transaction(() => completeStep(deps.db(), 'done', actor(request)));
      return reply.redirect('/admin/', 303);
    });
  };
}
