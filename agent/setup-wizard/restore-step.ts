import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Logger } from 'pino';
import type { BoxRestoreService, BoxRestoreState } from '../backups/index.ts';
import { errorBox, html, page } from '../web-pages/index.ts';
import { hasClaimTicket } from './claim-ticket.ts';
import { readProgress, stepPath } from './wizard-progress.ts';
import type { FamilyDb } from '../family-db/index.ts';

/**
 * The wizard's other way after the claim: "restore from a backup" (a new box replacing one
 * that was lost). Offered until an admin is made; the claim ticket proves the visitor
 * typed the claim code. When the restore is done, the old box's memu.db is in: its admin
 * signs in with their old password.
 */

export interface RestoreStepDeps {
  db: () => FamilyDb;
  restore: Pick<BoxRestoreService, 'driveAttached' | 'begin' | 'state'>;
  log: Logger;
}

const STAGE_WORDS: Record<string, string> = {
  opening: 'Opening the backup',
  holding: 'Stopping the apps',
  files: 'Bringing back photos, chats and settings',
  databases: 'Bringing back the databases',
  'family-db': 'Bringing back the family and its accounts',
  starting: 'Starting the apps',
  done: 'Done',
};

/**
 * The address's scheme says which kind of off-site backup it is (restic's own notation).
 * Not SFTP: the box has no SSH key to offer a server yet, so the Backups page does not offer it either.
 */
function offsiteKind(address: string): 'rest' | 's3' | undefined {
  const scheme = /^(rest|s3):/.exec(address.trim())?.[1];
  return scheme as 'rest' | 's3' | undefined;
}

export function restoreStepRoutes(deps: RestoreStepDeps): FastifyPluginAsync {
  const title = 'Restore from a backup';
  const send = (reply: FastifyReply, body: ReturnType<typeof html>, opts: { status?: number; refreshSeconds?: number } = {}) =>
    reply
      .code(opts.status ?? 200)
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .send(page({ title, body, refreshSeconds: opts.refreshSeconds }));

  const formPage = async (reply: FastifyReply, error?: string, status?: number) => {
    const drive = await deps.restore.driveAttached();
    return send(
      reply,
      html`<p>Bring back your family's chats, photos, accounts and settings from the backup of the Memu this one replaces. You need the password printed on its recovery kit.</p>
${errorBox(error)}
<form method="post" action="/admin/setup/restore" class="card">
<input type="hidden" name="_csrf" value="${reply.generateCsrf()}">
<fieldset><legend>Where is the backup?</legend>
<label><input type="radio" name="source" value="usb-drive"${drive ? ' checked' : ' disabled'}> The backup drive${drive ? ' plugged into this Memu' : html` <span class="hint">(none plugged in: plug in the drive labelled MEMU-BACKUP and reload this page)</span>`}</label>
<label><input type="radio" name="source" value="offsite"${drive ? '' : ' checked'}> An off-site backup</label>
<label for="address">Off-site address <span class="hint">as on the recovery kit, e.g. rest:https://backup.example.net/okafor</span></label>
<input id="address" name="address" autocomplete="off" spellcheck="false">
<label for="accessKeyId">Access key <span class="hint">S3 storage only</span></label><input id="accessKeyId" name="accessKeyId" autocomplete="off">
<label for="secretAccessKey">Secret key <span class="hint">S3 storage only</span></label><input id="secretAccessKey" name="secretAccessKey" type="password" autocomplete="off">
</fieldset>
<label for="password">Recovery kit password <span class="hint">six groups of five letters and digits</span></label>
<input id="password" name="password" autocomplete="off" autocapitalize="characters" spellcheck="false" required>
<button type="submit">Restore</button>
</form>
<p><a href="${stepPath('admin')}">Set this Memu up as a new one instead</a></p>`,
      { status },
    );
  };

  const statePage = (reply: FastifyReply, state: Exclude<BoxRestoreState, { state: 'idle' | 'failed' }>) => {
    if (state.state === 'done') {
      return send(
        reply,
        html`<div class="notice" role="status">Your family's Memu is back, from the backup made ${state.record.runId.slice(0, 8)}.</div>
<p>Sign in with the admin name and password you used on your old Memu. The apps are starting on the restored data; photos and chats appear within a few minutes.</p>
<p><a class="button" href="/admin/login">Sign in</a></p>`,
      );
    }
    const p = state.progress;
    return send(
      reply,
      html`<div class="card" role="status"><h2>${STAGE_WORDS[p.stage] ?? p.stage}&hellip;</h2>
${p.database ? html`<p>Database: ${p.database}</p>` : ''}
${p.percent !== undefined ? html`<progress max="1" value="${String(p.percent)}"></progress> <span>${Math.round(p.percent * 100)} %</span>` : ''}
<p class="hint">${state.source}. Keep Memu plugged in; this page updates by itself.</p></div>`,
      { refreshSeconds: 3 },
    );
  };

  /** Only before an admin is made, and only for whoever typed the claim code. */
  const allowed = (request: Parameters<typeof hasClaimTicket>[0], reply: FastifyReply): boolean => {
    const progress = readProgress(deps.db());
    if (progress.finished || progress.completed.includes('admin')) {
      void reply.redirect(progress.finished ? '/admin/' : stepPath(progress.current), 303);
      return false;
    }
    if (!hasClaimTicket(request)) {
      void reply.redirect(stepPath('claim'), 303);
      return false;
    }
    return true;
  };

  return async (app) => {
    app.get('/setup/restore', { config: { access: 'public' } }, async (request, reply) => {
      const state = await deps.restore.state();
      // Once the restored memu.db is in, the box is set up: anyone may see that it is done.
      if (state.state === 'done') return statePage(reply, state);
      // While it runs memu.db may be closed for a moment (being replaced): only the ticket is asked.
      if (state.state === 'running') return hasClaimTicket(request) ? statePage(reply, state) : reply.redirect(stepPath('claim'), 303);
      if (!allowed(request, reply)) return reply;
      if (state.state === 'failed') return formPage(reply, `The restore stopped (${STAGE_WORDS[state.stage] ?? state.stage}): ${state.message}`);
      return formPage(reply);
    });

    app.post('/setup/restore', { config: { access: 'public', rateLimit: { max: 10, timeWindow: '1 minute' } } }, async (request, reply) => {
      if (!allowed(request, reply)) return reply;
      const form = request.body as Record<string, string | undefined>;
      const address = (form.address ?? '').trim();
      const kind = form.source === 'usb-drive' ? 'usb-drive' : offsiteKind(address);
      if (!kind) return formPage(reply, 'Type the off-site address as the recovery kit shows it: it starts with rest: or s3:.', 400);
      try {
        await deps.restore.begin({ kind, label: kind === 'usb-drive' ? 'Backup drive' : 'Off-site backup', url: address, accessKeyId: form.accessKeyId, secretAccessKey: form.secretAccessKey }, form.password ?? '');
      } catch (err) {
        return formPage(reply, (err as Error).message, 400);
      }
      deps.log.info({ kind }, 'restore onto this box started from the wizard');
      return reply.redirect('/admin/setup/restore', 303);
    });
  };
}
