import type { FastifyPluginAsync } from 'fastify';
import { BACKUP_DRIVE_LABEL, describeTarget, readBackupPassword, readBackupSettings, RESTORE_ROOT, type BackupService } from '../backups/index.ts';
import { qrCode } from '../family-members/index.ts';
import { errorBox, html } from '../web-pages/index.ts';
import { drillLine, itemsTable, progressLine, targetsTable } from './backup-page.ts';
import type { DashboardContext } from './dashboard-context.ts';
import { confirmed, csrfField, field, sendConfirmPage, sendPage } from './dashboard-page.ts';

/** What the Backups page uses of the backup service (the agent's; tests may give their own). */
export type BackupDashboardSource = Pick<
  BackupService,
  'status' | 'runNow' | 'runDrill' | 'addTarget' | 'removeTarget' | 'setDailyTime' | 'repository' | 'restoreItem' | 'passwordFile' | 'prepareDrive'
> & { dataDir: string };

/**
 * GET  /admin/backups                                  targets, last backups, next run, progress, "Back up now", add a target, the time
 * POST /admin/backups/run                              back up now
 * POST /admin/backups/drill                            a restore drill now (in the background)
 * POST /admin/backups/targets                          adds a target (USB drive, folder, REST, S3, SFTP)
 * GET  /admin/backups/targets/:id/remove               asks        POST: removes it (its backups stay where they are)
 * POST /admin/backups/schedule                         the daily time
 * GET  /admin/backups/targets/:id/sets                 the target's backups
 * GET  /admin/backups/targets/:id/sets/:run?path=      a folder of one backup
 * GET  /admin/backups/targets/:id/sets/:run/restore    asks for a new folder's name     POST: restores the item into it
 * GET  /admin/backups/drive                            prepare a USB drive: the admin names it    POST: asks, then formats
 * GET  /admin/backups/recovery-kit                     the printable recovery kit (password, addresses, steps, QR code)
 */
export function backupRoutes(ctx: DashboardContext, backups: BackupDashboardSource): FastifyPluginAsync {
  const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

  return async (app) => {
    app.get('/backups', async (request, reply) => {
      const [status, fmt] = await Promise.all([backups.status(), ctx.formats()]);
      const body = html`${ctx.notices.take(request)}
${status.problem ? errorBox(status.problem) : ''}
${status.running ? progressLine(status.running, fmt) : ''}
<section class="card" aria-labelledby="h-targets"><h2 id="h-targets">Where backups go</h2>
${targetsTable(status, fmt)}
${status.nextRunAt && !status.running ? html`<p>Next backup: ${fmt.time(Date.parse(status.nextRunAt))}.</p>` : ''}
${
  status.targets.length > 0 && !status.running
    ? html`<form method="post" action="/admin/backups/run">${csrfField(reply)}<button type="submit">Back up now</button></form>`
    : ''
}
${drillLine(status, fmt)}
${status.targets.length > 0 && !status.running ? html`<form method="post" action="/admin/backups/drill">${csrfField(reply)}<button type="submit" class="secondary">Run a restore drill</button></form>` : ''}
<p><a href="/admin/backups/recovery-kit">Print the recovery kit</a>: without its password nobody, not even Memu's makers, can read the backups.</p>
</section>
<div class="grid">
<section class="card" aria-labelledby="h-add-usb"><h2 id="h-add-usb">USB drive</h2>
<p>A drive labelled ${BACKUP_DRIVE_LABEL}, plugged into the box. <a href="/admin/backups/drive">Prepare a new drive&hellip;</a></p>
<form method="post" action="/admin/backups/targets">${csrfField(reply)}<input type="hidden" name="kind" value="usb-drive">
<button type="submit" class="secondary">Back up to the USB drive</button></form>
</section>
<section class="card" aria-labelledby="h-add-remote"><h2 id="h-add-remote">Off-site</h2>
<form method="post" action="/admin/backups/targets">${csrfField(reply)}
<label for="f-kind">Kind</label>
<select id="f-kind" name="kind"><option value="rest">restic REST server</option><option value="s3">S3 storage</option></select>
${field({ name: 'label', label: 'Name', hint: 'what the family calls it, like "Grandma\'s house"' })}
${field({ name: 'url', label: 'Address', hint: 'rest:https://user:password@host:8000/memu or s3:https://host/bucket' })}
<label for="f-accessKeyId">S3 access key id <span class="hint">(S3 only)</span></label><input id="f-accessKeyId" name="accessKeyId" autocomplete="off">
<label for="f-secretAccessKey">S3 secret key <span class="hint">(S3 only)</span></label><input id="f-secretAccessKey" name="secretAccessKey" type="password" autocomplete="off">
<button type="submit" class="secondary">Add off-site backup</button></form>
</section>
<section class="card" aria-labelledby="h-time"><h2 id="h-time">When</h2>
<form method="post" action="/admin/backups/schedule">${csrfField(reply)}
${field({ name: 'time', label: 'Back up every day at', hint: '24-hour clock, in the family\'s time zone', value: status.dailyTime })}
<button type="submit" class="secondary">Save</button></form>
<p class="hint">Once a week, after the backup, part of each backup is read back to check it.</p>
</section>
</div>`;
      return sendPage(request, reply, { section: 'backups', title: 'Backups', body, refreshSeconds: status.running ? 3 : undefined });
    });

    app.post('/backups/run', async (request, reply) => {
      try {
        backups.runNow('admin');
        ctx.audit(request.admin!.username, 'backups.run');
        ctx.notices.add(request, { kind: 'ok', text: 'The backup has started; this page follows it.' });
      } catch (err) {
        ctx.notices.add(request, { kind: 'error', text: errorText(err) });
      }
      return reply.redirect('/admin/backups', 303);
    });

    app.post('/backups/drill', async (request, reply) => {
      const drill = backups.runDrill();
      // Its outcome is recorded and shown on the page; the request does not wait minutes for it.
      drill.catch((err: unknown) => ctx.log.warn({ err }, 'the restore drill failed to run'));
      const refused = await Promise.race([drill.then(() => undefined, (err: unknown) => err), new Promise((r) => setTimeout(r, 50, undefined))]);
      if (refused) ctx.notices.add(request, { kind: 'error', text: errorText(refused) });
      else {
        ctx.audit(request.admin!.username, 'backups.drill');
        ctx.notices.add(request, { kind: 'ok', text: 'The restore drill has started; its result appears here in a few minutes.' });
      }
      return reply.redirect('/admin/backups', 303);
    });

    app.post<{ Body: Record<string, string> }>('/backups/targets', async (request, reply) => {
      try {
        const target = await backups.addTarget(request.body ?? {});
        ctx.audit(request.admin!.username, 'backups.target-added', { target: target.id, kind: target.kind, label: target.label });
        ctx.notices.add(request, { kind: 'ok', text: `${target.label} added: the next backup goes there too. Print the recovery kit again, so it lists it.` });
      } catch (err) {
        ctx.notices.add(request, { kind: 'error', text: errorText(err) });
      }
      return reply.redirect('/admin/backups', 303);
    });

    app.get<{ Params: { id: string } }>('/backups/targets/:id/remove', async (request, reply) => {
      const target = (await backups.status()).targets.find((t) => t.id === request.params.id);
      if (!target) return sendPage(request, reply, { section: 'backups', title: 'No such target', body: html`<p>There is no such backup target. <a href="/admin/backups">Back to Backups</a></p>`, status: 404 });
      return sendConfirmPage(request, reply, {
        section: 'backups',
        title: `Stop backing up to ${target.label}?`,
        explanation: `Memu stops backing up to ${target.address}. The backups already there stay, and can still be restored with the recovery kit.`,
        action: `/admin/backups/targets/${target.id}/remove`,
        button: 'Stop backing up there',
        danger: true,
        cancelHref: '/admin/backups',
      });
    });

    app.post<{ Params: { id: string } }>('/backups/targets/:id/remove', async (request, reply) => {
      if (!confirmed(request.body)) return reply.redirect(`/admin/backups/targets/${encodeURIComponent(request.params.id)}/remove`, 303);
      if (await backups.removeTarget(request.params.id)) {
        ctx.audit(request.admin!.username, 'backups.target-removed', { target: request.params.id });
        ctx.notices.add(request, { kind: 'ok', text: 'The target was removed; its backups are left where they are.' });
      }
      return reply.redirect('/admin/backups', 303);
    });

    app.post<{ Body: { time?: string } }>('/backups/schedule', async (request, reply) => {
      try {
        await backups.setDailyTime(String(request.body?.time ?? '').trim());
        ctx.audit(request.admin!.username, 'backups.schedule', { time: request.body?.time });
        ctx.notices.add(request, { kind: 'ok', text: `Backups now run every day at ${request.body?.time}.` });
      } catch (err) {
        ctx.notices.add(request, { kind: 'error', text: errorText(err) });
      }
      return reply.redirect('/admin/backups', 303);
    });

    app.get<{ Params: { id: string } }>('/backups/targets/:id/sets', async (request, reply) => {
      const fmt = await ctx.formats();
      let body;
      try {
        const sets = (await (await backups.repository(request.params.id)).listSets()).filter((s) => s.complete).reverse();
        body = sets.length === 0
          ? html`<p>There is no complete backup there yet.</p>`
          : html`<ul>${sets.map((s) => html`<li><a href="/admin/backups/targets/${request.params.id}/sets/${encodeURIComponent(s.runId)}">${fmt.time(Date.parse(s.startedAt))}</a> <span class="hint">${fmt.bytes(s.bytesProcessed)}</span></li>`)}</ul>`;
      } catch (err) {
        body = errorBox(errorText(err));
      }
      return sendPage(request, reply, { section: 'backups', title: 'Backups to restore from', body: html`${body}<p><a href="/admin/backups">Back to Backups</a></p>` });
    });

    app.get<{ Params: { id: string; run: string }; Querystring: { path?: string } }>('/backups/targets/:id/sets/:run', async (request, reply) => {
      const fmt = await ctx.formats();
      const path = request.query.path ?? '';
      let body;
      try {
        const items = await (await backups.repository(request.params.id)).listItems(request.params.run, path);
        body = itemsTable(request.params.id, request.params.run, items, fmt);
      } catch (err) {
        body = errorBox(errorText(err));
      }
      return sendPage(request, reply, {
        section: 'backups',
        title: path ? `In the backup: ${path}` : 'In the backup',
        body: html`${body}<p><a href="/admin/backups/targets/${request.params.id}/sets">All backups of this target</a></p>`,
      });
    });

    const restoreForm = (id: string, run: string, path: string, csrf: ReturnType<typeof csrfField>, error?: string) => html`<form method="post" action="/admin/backups/targets/${id}/sets/${encodeURIComponent(run)}/restore" class="card">
${csrf}<input type="hidden" name="path" value="${path}">
<p>Restores <strong>${path}</strong> from this backup into a new folder under ${RESTORE_ROOT} in the photo library. Nothing that is there now is changed or replaced.</p>
${field({ name: 'into', label: 'New folder name', hint: 'letters, digits, spaces, dots or dashes', error })}
<button type="submit">Restore</button> <a class="button secondary" href="/admin/backups/targets/${id}/sets/${encodeURIComponent(run)}">Cancel</a></form>`;

    app.get<{ Params: { id: string; run: string }; Querystring: { path?: string } }>('/backups/targets/:id/sets/:run/restore', async (request, reply) =>
      sendPage(request, reply, { section: 'backups', title: 'Restore', body: restoreForm(request.params.id, request.params.run, request.query.path ?? '', csrfField(reply)) }),
    );

    app.post<{ Params: { id: string; run: string }; Body: { path?: string; into?: string } }>('/backups/targets/:id/sets/:run/restore', async (request, reply) => {
      const path = String(request.body?.path ?? '');
      try {
        const result = await backups.restoreItem(request.params.id, request.params.run, path, String(request.body?.into ?? ''));
        ctx.audit(request.admin!.username, 'backups.item-restored', { target: request.params.id, runId: request.params.run, path, into: result.directory });
        ctx.notices.add(request, { kind: 'ok', text: `${path} was restored into ${result.directory} (${result.files} files).` });
        return reply.redirect('/admin/backups', 303);
      } catch (err) {
        return sendPage(request, reply, { section: 'backups', title: 'Restore', body: restoreForm(request.params.id, request.params.run, path, csrfField(reply), errorText(err)), status: 400 });
      }
    });

    app.get('/backups/drive', async (request, reply) => {
      const body = html`${ctx.notices.take(request)}<form method="post" action="/admin/backups/drive" class="card">${csrfField(reply)}
<p>Formatting makes a drive the family's backup drive (labelled ${BACKUP_DRIVE_LABEL}). <strong>Everything on it is erased.</strong> Memu offers only a drive that is not in use; it never formats one by itself.</p>
${field({ name: 'disk', label: 'The drive', hint: 'its name, like /dev/sda (the Storage card and the drive\'s maker tell which)' })}
<button type="submit">Next</button> <a class="button secondary" href="/admin/backups">Cancel</a></form>`;
      return sendPage(request, reply, { section: 'backups', title: 'Prepare a USB drive', body });
    });

    app.post<{ Body: { disk?: string; confirm?: string } }>('/backups/drive', async (request, reply) => {
      const disk = String(request.body?.disk ?? '').trim();
      if (!confirmed(request.body)) {
        return sendConfirmPage(request, reply, {
          section: 'backups',
          title: `Erase ${disk}?`,
          explanation: `Everything on ${disk} is erased and it becomes the backup drive. This cannot be undone.`,
          action: '/admin/backups/drive',
          button: `Erase ${disk}`,
          danger: true,
          cancelHref: '/admin/backups',
          hidden: { disk },
        });
      }
      try {
        await backups.prepareDrive(disk);
        ctx.audit(request.admin!.username, 'backups.drive-prepared', { disk });
        ctx.notices.add(request, { kind: 'ok', text: `${disk} is now the backup drive. Add "USB drive" as a target if it is not one yet.` });
        return reply.redirect('/admin/backups', 303);
      } catch (err) {
        ctx.notices.add(request, { kind: 'error', text: errorText(err) });
        return reply.redirect('/admin/backups/drive', 303);
      }
    });

    app.get('/backups/recovery-kit', async (request, reply) => {
      const password = await readBackupPassword(backups.passwordFile);
      if (!password) return sendPage(request, reply, { section: 'backups', title: 'Recovery kit', body: html`${errorBox('This box has no backup password yet; it is made when the agent starts. Reload in a minute.')}`, status: 503 });
      const settings = await readBackupSettings(backups.dataDir);
      const targets = settings.targets.map(describeTarget);
      ctx.audit(request.admin!.username, 'backups.recovery-kit-viewed');
      const qr = await qrCode(password, 'The backup password, for a phone to read');
      const body = html`<article class="sheet">
<p><strong>Keep this page somewhere safe, away from the box</strong> (with the family's papers). Whoever holds it can read the backups; without it nobody can, not even Memu's makers.</p>
<h2>Backup password</h2>
<p class="secret"><code>${password}</code></p>
${qr}
<h2>Where the backups are</h2>
${targets.length > 0 ? html`<ul>${targets.map((t) => html`<li>${t.kind}: <code>${t.address}</code></li>`)}</ul>` : html`<p class="warn">No backup target is set up yet: add one, then print this page again.</p>`}
<p class="hint">Passwords of off-site storage are not printed here; keep them with your storage provider's account.</p>
<h2>Restoring onto a new box</h2>
<ol>
<li>Set up the new Memu box until its setup wizard asks about the family.</li>
<li>Plug in the backup drive (labelled ${BACKUP_DRIVE_LABEL}), or have the off-site address above at hand.</li>
<li>Choose "restore from a backup" and type the password above (or scan the code).</li>
<li>Memu brings back the family's accounts, chats, photos and settings, and starts the apps on them.</li>
</ol>
<p class="hint">Without a Memu box: the backups are restic repositories; <code>restic -r ADDRESS restore latest --tag memu-set --target DIR</code> with this password restores the files, and each database's dump is in the snapshots tagged memu-database.</p>
</article>
<p class="no-print"><a href="/admin/backups">Back to Backups</a> &middot; print this page with the browser's Print command.</p>`;
      return sendPage(request, reply, { section: 'backups', title: 'Recovery kit', body });
    });
  };
}

/** The Backups page of an agent built without the backup service (tests of other pages): says so rather than a 404 behind the navigation's link. */
export function backupsUnavailableRoutes(): FastifyPluginAsync {
  return async (app) => {
    app.get('/backups', async (request, reply) =>
      sendPage(request, reply, { section: 'backups', title: 'Backups', body: html`<p>Backups are not available on this device's agent.</p>`, status: 503 }),
    );
  };
}
