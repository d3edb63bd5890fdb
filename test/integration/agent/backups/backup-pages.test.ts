import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackupService } from '../../../../agent/backups/index.ts';
import { backupRoutes } from '../../../../agent/dashboard/backup-routes.ts';
import type { DashboardContext } from '../../../../agent/dashboard/dashboard-context.ts';
import { Notices } from '../../../../agent/dashboard/dashboard-page.ts';
import { familyFormats } from '../../../../agent/dashboard/format.ts';
import { createHttpModule, type HttpModule } from '../../../../agent/http/index.ts';
import { createFamilyFiles, requireBackupPrerequisites, testBackupService } from './backup-fixtures.ts';

/**
 * The admin's Backups page over HTTP with the real http module (CSRF, form posts) and the
 * real backup service and restic, backing up to a folder. One stand-in: `signedInAdmin`
 * answers every request as the signed-in admin (sign-in itself is tested with admin-auth).
 */
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
let work: string;
let dataDir: string;
let service: BackupService;
let http: HttpModule;
let base: string;
const audits: string[] = [];
let cookies = '';

const signedInAdmin = { adminFor: async () => ({ username: 'ada', displayName: 'Ada', sessionIdHash: 'session-1' }) };

async function get(path: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${base}${path}`, { headers: { cookie: cookies, accept: 'text/html' }, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) cookies = [cookies, c.split(';')[0]].filter(Boolean).join('; ');
  return { status: res.status, text: await res.text() };
}

async function post(path: string, form: Record<string, string>, from: string): Promise<{ status: number; location?: string; text: string }> {
  const page = await get(from);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, ...form }).toString(),
    redirect: 'manual',
  });
  return { status: res.status, location: res.headers.get('location') ?? undefined, text: await res.text() };
}

async function waitUntilIdle(): Promise<void> {
  for (let i = 0; i < 600 && (await service.status()).running; i++) await new Promise((r) => setTimeout(r, 200));
}

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-backup-pages-'));
  dataDir = join(work, 'data');
  await createFamilyFiles(dataDir, 10);
  service = testBackupService(dataDir, log);
  await service.start();
  const ctx = {
    log,
    now: Date.now,
    notices: new Notices(),
    formats: async () => familyFormats(undefined),
    audit: (actor: string, action: string) => audits.push(`${actor} ${action}`),
  } as unknown as DashboardContext;
  http = createHttpModule(
    { listenHosts: ['127.0.0.1'], port: 0, routes: [backupRoutes(ctx, service)], apiKeyDigest: async () => undefined, sessions: signedInAdmin, cookieSecretPath: join(work, 'cookie-secret') },
    log,
  );
  await http.start();
  base = `http://127.0.0.1:${http.addresses()[0]!.port}`;
}, 60_000);

afterAll(async () => {
  await http?.stop();
  await service?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the Backups page', () => {
  it('tells a family with no target that nothing is backed up, and offers the USB drive and off-site forms', async () => {
    const page = await get('/admin/backups');
    expect(page.status).toBe(200);
    expect(page.text).toContain('No backup target is set up: nothing is backed up.');
    expect(page.text).toContain('Back up to the USB drive');
    expect(page.text).toContain('Add off-site backup');
    expect(page.text).not.toContain('Back up now');
  });

  it('adds a target, backs up now with a button, and shows the last backup and the next one', async () => {
    const added = await post('/admin/backups/targets', { kind: 'directory', label: 'Cellar disk', path: join(work, 'cellar') }, '/admin/backups');
    expect(added).toMatchObject({ status: 303, location: '/admin/backups' });
    const wrong = await post('/admin/backups/targets', { kind: 'rest', url: 'https://no-prefix.example' }, '/admin/backups');
    expect(wrong.status).toBe(303);
    expect((await get('/admin/backups')).text).toContain('The backup target cannot be added: url: a restic REST server address, like rest:https://user:password@backup.example.net:8000/memu.');

    const before = await get('/admin/backups');
    expect(before.text).toContain('Cellar disk');
    expect(before.text).toContain('never');
    const run = await post('/admin/backups/run', {}, '/admin/backups');
    expect(run).toMatchObject({ status: 303, location: '/admin/backups' });
    await waitUntilIdle();
    const after = await get('/admin/backups');
    expect(after.text).toMatch(/kB backed up \(/);
    expect(after.text).toContain('Next backup:');
    expect(after.text).toContain('No restore drill has run yet');
    expect(after.text).toContain('Run a restore drill');
    expect(audits).toEqual(['ada backups.target-added', 'ada backups.run']);
  }, 60_000);

  it('refuses a form without the CSRF token', async () => {
    const res = await fetch(`${base}/admin/backups/run`, { method: 'POST', headers: { cookie: cookies, 'content-type': 'application/x-www-form-urlencoded' }, body: '', redirect: 'manual' });
    expect(res.status).toBe(403);
    expect((await service.status()).running).toBeUndefined();
  });

  it('prints a recovery kit with the password, the target and a QR code', async () => {
    const kit = await get('/admin/backups/recovery-kit');
    const password = (await readFile(service.passwordFile, 'utf8')).trim();
    expect(kit.text).toContain(`<code>${password}</code>`);
    expect(kit.text).toContain(join(work, 'cellar'));
    expect(kit.text).toMatch(/<figure class="qr"><svg aria-hidden="true"/);
    expect(kit.text).toContain('Restoring onto a new box');
  });

  it('browses a backup and restores a folder into a new folder, refusing a name already there', async () => {
    const targetId = (await service.status()).targets[0]!.id;
    const sets = await get(`/admin/backups/targets/${targetId}/sets`);
    const setLink = new RegExp(`/admin/backups/targets/${targetId}/sets/([^"]+)"`).exec(sets.text)![1]!;
    const library = await get(`/admin/backups/targets/${targetId}/sets/${setLink}?path=photos%2Flibrary`);
    expect(library.text).toContain('2020/');
    const form = `/admin/backups/targets/${targetId}/sets/${setLink}/restore?path=photos%2Flibrary%2F2020`;
    const done = await post(`/admin/backups/targets/${targetId}/sets/${setLink}/restore`, { path: 'photos/library/2020', into: 'From the backup' }, form);
    expect(done).toMatchObject({ status: 303, location: '/admin/backups' });
    expect((await get('/admin/backups')).text).toContain('photos/library/2020 was restored into photos/restored/From the backup (2 files).');
    const again = await post(`/admin/backups/targets/${targetId}/sets/${setLink}/restore`, { path: 'photos/library/2020', into: 'From the backup' }, form);
    expect(again.status).toBe(400);
    expect(again.text).toContain('photos/restored/From the backup already exists; nothing is restored over existing files. Choose another folder name.');
  }, 60_000);
});
