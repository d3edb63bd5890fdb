/**
 * A new box brought back from the family's off-site backup through the wizard, in Chromium:
 * real restic, a real restic REST server (Debian's restic-rest-server) as the off-site
 * target, a real PostgreSQL 15 standing in for the stack's, real memu.db. The old box's
 * backup service backs a family up; the new box's wizard claims, restores, and its admin
 * signs in with the old password. Only the stack is a FAKE (it records the holds the
 * restore asks for; the QEMU end-to-end test holds a real stack).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareAdmin } from '../../../../agent/admin-auth/index.ts';
import { createBackupModule, createBoxRestoreService, readBackupPassword, type BackupModule, type BackupService, type DatabaseRestoreTarget } from '../../../../agent/backups/index.ts';
import { familyDbPath, openFamilyDb, type FamilyDb } from '../../../../agent/family-db/index.ts';
import { createMaintenanceLock } from '../../../../agent/maintenance/index.ts';
import { readProgress, WIZARD_STEPS } from '../../../../agent/setup-wizard/index.ts';
import { completeStep } from '../../../../agent/setup-wizard/wizard-progress.ts';
import type { StackHold } from '../../../../agent/stack/index.ts';
import { startProcess } from '../../../../shared/process/run-command.ts';
import { axeViolations, launchChromium, seriousViolations, VIEWPORTS } from '../../../helpers/browser.ts';
import { PG_BIN, startPostgres, type PostgresCluster } from '../../../helpers/postgres.ts';
import { startWebAgent, TEST_CLAIM_CODE, type WebAgent } from '../../../helpers/web-agent.ts';
import { addFamilyRows, createFamilyDatabases, createFamilyFiles, databaseFingerprint, DATABASES, dumpSource, familyFileHashes, familyRows, requireBackupPrerequisites, testBackupService } from './backup-fixtures.ts';

const PG_PORT = 18170;
const REST_PORT = 18171;
const log = pino({ level: process.env.MEMU_TEST_LOG ?? 'silent' });
const OLD_PASSWORD = 'purple kettles hum at dawn';

let work: string;
let pg: PostgresCluster;
let restServer: ReturnType<typeof startProcess> | undefined;
let oldBox: string;
let oldDb: FamilyDb;
let recoveryPassword: string;
let fingerprints: Record<string, Record<string, string>>;
let oldFiles: Record<string, string>;
let oldRows: unknown;
let agent: WebAgent;
let engine: BackupModule;
/** The new box's backup service, started before the restore with no target. */
let newBoxBackups: BackupService;
let browser: Browser;
let page: Page;
const holds: (StackHold | undefined)[] = [];

/** The stack's database as the restore reaches it: here the test cluster, through pg_restore on the host. */
const hostDatabase: DatabaseRestoreTarget = {
  ready: async () => undefined,
  drop: async (name) => void (await pg.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
  restoreCommand: async () => ({
    command: [join(PG_BIN, 'pg_restore'), '--host=127.0.0.1', `--port=${pg.port}`, '--username=postgres', '--create', '--exit-on-error', '--dbname=postgres'],
    env: { PGPASSWORD: pg.superuserPassword },
  }),
};

beforeAll(async () => {
  requireBackupPrerequisites();
  work = await mkdtemp(join(tmpdir(), 'memu-box-restore-'));
  pg = await startPostgres(PG_PORT);
  await mkdir(join(work, 'rest'));
  restServer = startProcess('restic-rest-server', ['--path', join(work, 'rest'), '--listen', `127.0.0.1:${REST_PORT}`, '--no-auth']);
  await new Promise((r) => setTimeout(r, 500));

  // The old box: a family with photos, media, config, secrets, two databases and memu.db, backed up off-site.
  oldBox = join(work, 'old-box');
  await createFamilyFiles(oldBox, 60);
  await writeFile(join(oldBox, 'secrets', 'agent-api-key.sha256'), `${'0'.repeat(64)}\n`, { mode: 0o600 });
  await createFamilyDatabases(pg);
  oldDb = openFamilyDb(familyDbPath(oldBox), log);
  const admin = await prepareAdmin({ username: 'ada', displayName: 'Adaeze', password: OLD_PASSWORD });
  if (!('passwordHash' in admin)) throw new Error('the test admin was refused');
  oldDb.transaction(() => {
    oldDb.run('INSERT INTO family (id, name, created_at) VALUES (1, ?, 1)', ['The Okafors']);
    oldDb.run('INSERT INTO admins (username, display_name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, 1, 1)', ['ada', 'Adaeze', admin.passwordHash]);
    for (const step of WIZARD_STEPS) completeStep(oldDb, step, 'ada');
  });
  addFamilyRows(oldDb, ['chidi', 'ngozi']);
  const service = testBackupService(oldBox, log, { databases: async () => DATABASES.map((d) => dumpSource(pg, d)), familyDb: () => oldDb });
  await service.start();
  await service.addTarget({ kind: 'rest', url: `rest:http://127.0.0.1:${REST_PORT}/okafor` });
  await service.runNow('admin').done;
  const status = await service.status();
  expect(status.targets[0]!.lastFailure, JSON.stringify(status.targets[0]!.lastFailure)).toBeUndefined();
  await service.stop();
  recoveryPassword = (await readBackupPassword(service.passwordFile))!;
  fingerprints = Object.fromEntries(await Promise.all(DATABASES.map(async (d) => [d, await databaseFingerprint(pg, d)] as const)));
  oldFiles = await familyFileHashes(oldBox);
  oldRows = familyRows(oldDb);
  oldDb.close();

  // The old box is gone. The new box's cluster has the init's empty databases.
  for (const d of DATABASES) await pg.query(`DROP DATABASE ${d}`);
  await pg.query('CREATE DATABASE synapse');

  agent = await startWebAgent({
    restore: ({ familyDb, dataDir }) => {
      engine = createBackupModule({ dataDir }, log);
      newBoxBackups = testBackupService(dataDir, log);
      return createBoxRestoreService(
        {
          dataDir,
          engine,
          lock: createMaintenanceLock(),
          // A FAKE stack: it records the holds; the e2e test holds a real one.
          stack: { setHold: async (hold) => void holds.push(hold) },
          familyDb,
          databases: async () => hostDatabase,
          setupFinished: () => readProgress(familyDb.db).finished,
          restored: () => newBoxBackups.reload(),
        },
        log,
      );
    },
  });
  await engine.start();
  await newBoxBackups.start();
  expect((await newBoxBackups.status()).targets).toEqual([]);
  // The new box's own secrets, and its empty cluster the restore sets aside.
  await mkdir(join(agent.dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  await writeFile(join(agent.dataDir, 'secrets', 'agent-api-key.sha256'), `${'1'.repeat(64)}\n`, { mode: 0o600 });
  await writeFile(join(agent.dataDir, 'secrets', 'claim-code.scrypt'), 'this box\n', { mode: 0o600 });
  await mkdir(join(agent.dataDir, 'postgres'));
  await writeFile(join(agent.dataDir, 'postgres', 'PG_VERSION'), '15\n');
  browser = await launchChromium();
  page = await (await browser.newContext({ viewport: VIEWPORTS.phone, locale: 'en-GB' })).newPage();
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  await engine?.stop();
  await newBoxBackups?.stop();
  restServer?.child.kill();
  await pg?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('restoring onto a new box from the wizard', () => {
  it('refuses a password that is not a recovery kit password, and a wrong one, changing nothing', async () => {
    await page.goto(`${agent.base}/admin/setup/claim`);
    await page.getByLabel('Claim code').fill(TEST_CLAIM_CODE);
    await page.getByRole('button', { name: 'Claim' }).click();
    await page.getByRole('link', { name: 'Restore it from its backup' }).click();
    expect(new URL(page.url()).pathname).toBe('/admin/setup/restore');
    for (const [size, viewport] of Object.entries(VIEWPORTS)) {
      await page.setViewportSize(viewport);
      expect(seriousViolations(await axeViolations(page)), `restore page at ${size} width`).toEqual([]);
    }
    await page.setViewportSize(VIEWPORTS.phone);
    await page.getByLabel('Off-site address').fill(`rest:http://127.0.0.1:${REST_PORT}/okafor`);
    await page.getByLabel('Recovery kit password').fill('hello');
    await page.getByRole('button', { name: 'Restore' }).click();
    expect(await page.getByRole('alert').textContent()).toMatch(/not a recovery kit password/);

    await page.getByLabel('Off-site address').fill(`rest:http://127.0.0.1:${REST_PORT}/okafor`);
    await page.getByLabel('Recovery kit password').fill('7KQ2M-4XD9P-AAAAA-BBBBB-CCCCC-DDDDD');
    await page.getByRole('button', { name: 'Restore' }).click();
    await page.getByRole('alert').waitFor({ timeout: 60_000 });
    expect(await page.getByRole('alert').textContent()).toMatch(/password/i);
    // Nothing moved, and the apps were let go again (if they were ever held).
    expect(await readFile(join(agent.dataDir, 'secrets', 'agent-api-key.sha256'), 'utf8')).toBe(`${'1'.repeat(64)}\n`);
    expect(readProgress(agent.db()).finished).toBe(false);
    expect(holds.at(-1)).toBeUndefined();
  });

  it('brings back the photos, media, config, secrets, both databases and memu.db; the old admin signs in', async () => {
    holds.length = 0;
    await page.getByLabel('Off-site address').fill(`rest:http://127.0.0.1:${REST_PORT}/okafor`);
    await page.getByLabel('Recovery kit password').fill(recoveryPassword.toLowerCase());
    const started = Date.now();
    await page.getByRole('button', { name: 'Restore' }).click();
    // The page follows the restore by reloading itself every 3 s, until it ends.
    await page.getByRole('link', { name: 'Sign in' }).or(page.getByRole('alert')).waitFor({ timeout: 180_000 });
    expect(await page.getByRole('alert').count(), await page.locator('body').innerText()).toBe(0);
    console.log(`restore onto a new box: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Apps and database held while their data was replaced, the database let go first, then all.
    expect(holds).toEqual([
      { reason: "bringing back the family's backup", services: ['memu_postgres', 'memu_postgres_init'], roles: ['app'] },
      { reason: "bringing back the family's backup", services: [], roles: ['app'] },
      undefined,
    ]);
    for (const d of DATABASES) expect(await databaseFingerprint(pg, d), d).toEqual(fingerprints[d]);
    const restored = await familyFileHashes(agent.dataDir);
    // The new box keeps its own fleet key and claim code; everything else is the old box's.
    expect(restored['secrets/agent-api-key.sha256']).not.toBe(oldFiles['secrets/agent-api-key.sha256']);
    expect(Object.keys(restored).sort()).toEqual([...Object.keys(oldFiles), 'secrets/claim-code.scrypt'].sort());
    for (const [path, hash] of Object.entries(oldFiles)) if (path !== 'secrets/agent-api-key.sha256') expect(restored[path], path).toBe(hash);
    expect(familyRows(agent.db())).toEqual(oldRows);
    expect(await readBackupPassword(engine.passwordFile)).toBe(recoveryPassword);
    // The new box backs up where the old one did, without a restart.
    expect((await newBoxBackups.status()).targets).toMatchObject([{ kind: 'rest', address: `rest:http://127.0.0.1:${REST_PORT}/okafor` }]);
    // The new box's empty cluster and the restore's staging are gone.
    await expect(readFile(join(agent.dataDir, 'postgres', 'PG_VERSION'))).rejects.toThrow(/ENOENT/);
    await expect(readFile(join(agent.dataDir, 'agent', 'box-restore-staging'))).rejects.toThrow(/ENOENT/);

    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('Username').fill('ada');
    await page.getByLabel('Password').fill(OLD_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    expect(new URL(page.url()).pathname).toBe('/admin/');
  });
});
